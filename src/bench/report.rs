//! The detail lines under a scenario's figures, from the lines its child
//! process printed: files per table-hour (`TRICKLE`), a dimension's load
//! (`DIMENSION`), the sink's requests (`REQUESTS`) and the encoder alone
//! (`ENCODE`, and by column `ENCODE_COLUMN`).

/// Prints the details of one scenario's stdout; `files` is its output files.
pub fn details(stdout: &str, files: f64) {
    if let Some(d) = stdout.lines().find(|l| l.starts_with("TRICKLE ")) {
        let f: Vec<f64> = d
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        if f.len() == 5 {
            println!(
                "{:<46} files per table-hour: max {:.0}, mean {:.1}; last source file to _SUCCESS {:.2}s; {:.0} checkpoints; largest table-hour {:.1} MB",
                "",
                f[0],
                f[1],
                f[2],
                f[3],
                f[4] / 1e6
            );
        }
    }
    if let Some(d) = stdout.lines().find(|l| l.starts_with("DIMENSION ")) {
        let f: Vec<f64> = d
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        if let [secs, mem, arrow, rss, ..] = f[..] {
            println!(
                "{:<46} load {secs:.2}s, snapshot {:.0} MB (Arrow {:.0} MB), RSS +{:.0} MB",
                "",
                mem / 1e6,
                arrow / 1e6,
                rss / 1024.0
            );
        }
    }
    if let Some(d) = stdout.lines().find(|l| l.starts_with("REQUESTS ")) {
        // REQUESTS <all> <op=n>...
        let mut w = d.split_whitespace().skip(1);
        let all: f64 = w.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        let ops: Vec<&str> = w.collect();
        println!(
            "{:<46} sink requests: {all:.0} ({:.1} per file; {})",
            "",
            all / files.max(1.0),
            ops.join(", ")
        );
    }
    for l in stdout.lines().filter(|l| l.starts_with("ENCODE ")) {
        // ENCODE <level> <cpu> <bytes> <variant...>
        let mut w = l.split_whitespace().skip(1);
        let (Some(level), Some(c), Some(b)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let name: Vec<&str> = w.collect();
        let (c, b) = (
            c.parse::<f64>().unwrap_or(0.0),
            b.parse::<f64>().unwrap_or(0.0),
        );
        println!(
            "{:<46} zstd {level}, {:<22} {c:>7.1} CPU s {:>9.0} MB",
            "",
            name.join(" "),
            b / 1e6
        );
    }
    encode_columns(stdout);
}

/// The encoder's CPU by column, most first: encoded alone as sluice
/// writes it (zstd 1), the share of that which is compression, and in how
/// many partitions the column got a dictionary.
fn encode_columns(stdout: &str) {
    // ENCODE_COLUMN <name> <cpu> <bytes> <cpu uncompressed> <bytes uncompressed> <dictionary> <files>
    let mut rows: Vec<(String, Vec<f64>)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ENCODE_COLUMN "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_string();
            let f: Vec<f64> = w.filter_map(|v| v.parse().ok()).collect();
            (f.len() == 6).then_some((name, f))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    rows.sort_by(|a, b| b.1[0].total_cmp(&a.1[0]));
    let all: f64 = rows.iter().map(|(_, f)| f[0]).sum();
    println!(
        "{:<46} by column, each encoded alone (zstd 1, as written; {all:.1} CPU s in all):",
        ""
    );
    for (name, f) in rows {
        let zstd = (f[0] - f[2]).max(0.0);
        println!(
            "{:<46}   {name:<16} {:>6.2} CPU s ({:>3.0}% zstd) {:>8.1} MB ({:>7.1} MB raw), dictionary in {:.0} of {:.0} partitions",
            "",
            f[0],
            100.0 * zstd / f[0].max(1e-9),
            f[1] / 1e6,
            f[3] / 1e6,
            f[4],
            f[5]
        );
    }
}
