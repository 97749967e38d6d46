//! `sluice bench --only p100_encode`: sluice's Parquet encoder alone. The
//! routed output of a P100 run is read back into memory one table
//! partition at a time and encoded again through sluice's writer path
//! (`ArrowWriter` with sluice's `WriterProperties`) into a byte counter: no
//! reading, routing, checkpointing or disk writes are timed. Reads the
//! routed folder it is given; writes nothing.
//!
//! It then breaks the default encoding down by column: each column is
//! encoded alone, as sluice writes it and again uncompressed, so the
//! report shows which columns the encoder's CPU goes to and how much of
//! it is zstd.

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use sluice::sink::encoding::{self, EncodingSettings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The sink hands its encoder batches of this many rows or bytes,
/// whichever comes first (`COALESCE_ROWS`, `COALESCE_BYTES` in
/// `sluice::sink`); the first one is the sample of the encoding choice.
const SINK_ROWS: usize = 65_536;
const SINK_BYTES: u64 = 1 << 20;

/// The encodings compared: (name, properties for a file and its sample).
type Variant = (
    &'static str,
    fn(&RecordBatch, &EncodingSettings) -> WriterProperties,
);

const VARIANTS: [Variant; 3] = [
    ("dictionary everywhere", |_, s| {
        encoding::uniform_properties(s)
    }),
    ("per-column choice, all statistics", |b, s| {
        let s = EncodingSettings {
            all_statistics: true,
            ..s.clone()
        };
        encoding::writer_properties(&b.schema(), b, &s)
    }),
    ("per-column choice", |b, s| {
        encoding::writer_properties(&b.schema(), b, s)
    }),
];

/// A writer that only counts bytes.
#[derive(Default)]
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CPU time of the calling thread.
fn thread_cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } != 0 {
        return 0.0;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Every partition folder holding Parquet files under `root`, by table.
fn partitions(root: &Path) -> Result<BTreeMap<PathBuf, Vec<PathBuf>>> {
    let mut out: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                out.entry(d.clone()).or_default().push(p);
            }
        }
    }
    Ok(out)
}

/// A partition's rows as the sink would hand them to its encoder.
fn load(files: &[PathBuf]) -> Result<Vec<RecordBatch>> {
    let mut batches = Vec::new();
    for f in files {
        let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f)?)?
            .with_batch_size(SINK_ROWS)
            .build()?;
        for b in r {
            let b = b?;
            let bytes = sluice::sink::slice_bytes(&b).max(1);
            let step = ((b.num_rows() as u64 * SINK_BYTES / bytes) as usize).clamp(1, SINK_ROWS);
            let mut at = 0;
            while at < b.num_rows() {
                let n = step.min(b.num_rows() - at);
                batches.push(b.slice(at, n));
                at += n;
            }
        }
    }
    Ok(batches)
}

/// Encodes `batches` with `props` into a byte counter: (CPU s, bytes).
fn encode(batches: &[RecordBatch], props: WriterProperties) -> Result<(f64, u64)> {
    let Some(first) = batches.first() else {
        return Ok((0.0, 0));
    };
    let cpu0 = thread_cpu_secs();
    let mut w = ArrowWriter::try_new(Count::default(), first.schema(), Some(props))?;
    for b in batches {
        w.write(b)?;
    }
    let bytes = w.into_inner()?.0;
    Ok((thread_cpu_secs() - cpu0, bytes))
}

/// One column's share of the default encoding, over every partition.
#[derive(Default)]
struct Column {
    zstd: Total,
    uncompressed: Total,
    files: u32,
    dictionary: u32,
}

/// Totals of one variant at one zstd level.
#[derive(Default, Clone)]
struct Total {
    cpu: f64,
    bytes: u64,
}

/// Encodes every partition under `routed` with each variant at each zstd
/// level; prints one `ENCODE` line per (variant, level), then one
/// `ENCODE_COLUMN` line per column of the default encoding, and returns
/// the variants' total CPU seconds and the rows encoded.
pub fn measure(routed: &Path, levels: &[i32], row_group_rows: usize) -> Result<(f64, u64)> {
    let parts = partitions(routed)?;
    let mut totals = vec![Total::default(); VARIANTS.len() * levels.len()];
    let mut rows = 0u64;
    let mut columns: BTreeMap<String, Column> = BTreeMap::new();
    for files in parts.values() {
        let batches = load(files)?;
        let Some(first) = batches.first() else {
            continue;
        };
        rows += batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        for (vi, (_, props)) in VARIANTS.iter().enumerate() {
            for (li, &level) in levels.iter().enumerate() {
                let s = EncodingSettings {
                    zstd_level: level,
                    row_group_rows,
                    all_statistics: false,
                };
                let (c, bytes) = encode(&batches, props(first, &s))?;
                let t = &mut totals[vi * levels.len() + li];
                t.cpu += c;
                t.bytes += bytes;
            }
        }
        by_column(&batches, row_group_rows, &mut columns)?;
    }
    let mut cpu = 0.0;
    for (vi, (name, _)) in VARIANTS.iter().enumerate() {
        for (li, level) in levels.iter().enumerate() {
            let t = &totals[vi * levels.len() + li];
            cpu += t.cpu;
            println!("ENCODE {level} {} {} {name}", t.cpu, t.bytes);
        }
    }
    // Not added to `cpu`: the scenario's figure stays the variants' total.
    for (name, c) in &columns {
        println!(
            "ENCODE_COLUMN {name} {} {} {} {} {} {}",
            c.zstd.cpu,
            c.zstd.bytes,
            c.uncompressed.cpu,
            c.uncompressed.bytes,
            c.dictionary,
            c.files
        );
    }
    Ok((cpu, rows))
}

/// Adds each column of one partition's `batches`, encoded alone with the
/// default properties (zstd 1, sluice's choice for the column) and again
/// uncompressed, to `columns`.
fn by_column(
    batches: &[RecordBatch],
    row_group_rows: usize,
    columns: &mut BTreeMap<String, Column>,
) -> Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let s = EncodingSettings {
        zstd_level: 1,
        row_group_rows,
        all_statistics: false,
    };
    let schema = first.schema();
    let choices = encoding::choices(&schema, first, &s);
    for (i, (name, choice)) in choices.into_iter().enumerate() {
        let alone = batches
            .iter()
            .map(|b| b.project(&[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(head) = alone.first() else {
            continue;
        };
        let props = encoding::writer_properties(&head.schema(), head, &s);
        let plain = props
            .clone()
            .into_builder()
            .set_compression(Compression::UNCOMPRESSED)
            .build();
        let c = columns.entry(name).or_default();
        for (total, props) in [(&mut c.zstd, props), (&mut c.uncompressed, plain)] {
            let (cpu, bytes) = encode(&alone, props)?;
            total.cpu += cpu;
            total.bytes += bytes;
        }
        c.files += 1;
        c.dictionary += u32::from(choice == encoding::Choice::Dictionary);
    }
    Ok(())
}
