//! Source schema evolution: owns how a file's schema is compared with the
//! source schema, which changes make the source schema grow (a new column,
//! a widened type) and which are refused (an incompatible type, a missing
//! required column), and how a file's columns are conformed to the source
//! schema when it is read (a widening cast, NULL for a column the file
//! lacks). Pure: no I/O; the coordinator decides when a change takes effect.
//!
//! Widening, file type -> source type (the values are cast, never lost):
//! ```text
//! Int8 -> Int16 -> Int32 -> Int64        UInt8 -> UInt16 -> UInt32 -> UInt64
//! Float16 -> Float32 -> Float64          Timestamp(s -> ms -> us -> ns, same zone)
//! Utf8 <-> LargeUtf8 <-> Utf8View        Binary <-> LargeBinary <-> BinaryView
//! Dictionary(_, T) -> T
//! ```
//! The string (and binary) forms hold the same values: a file with any of
//! them fits the source schema as it is and is cast to the source's form,
//! so the schema (and every output table's column type) stays put. Only
//! a column above 2 GiB in one batch cannot be small Utf8: the cast says
//! so and the file is quarantined.

use super::{ReadError, SourceSchema};
use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use std::sync::Arc;

/// How the source schema changes for a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The file brings a column the source schema lacks.
    Added { column: String, ty: DataType },
    /// The file's column has a wider type than the source schema's.
    Widened {
        column: String,
        from: DataType,
        to: DataType,
    },
}

impl Change {
    pub fn column(&self) -> &str {
        match self {
            Change::Added { column, .. } | Change::Widened { column, .. } => column,
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { column, ty } => write!(f, "gained column {column} ({ty})"),
            Change::Widened { column, from, to } => {
                write!(f, "widened column {column} from {from} to {to}")
            }
        }
    }
}

fn int_rank(t: &DataType) -> Option<(bool, u8)> {
    Some(match t {
        DataType::Int8 => (true, 1),
        DataType::Int16 => (true, 2),
        DataType::Int32 => (true, 3),
        DataType::Int64 => (true, 4),
        DataType::UInt8 => (false, 1),
        DataType::UInt16 => (false, 2),
        DataType::UInt32 => (false, 3),
        DataType::UInt64 => (false, 4),
        _ => return None,
    })
}

fn float_rank(t: &DataType) -> Option<u8> {
    match t {
        DataType::Float16 => Some(1),
        DataType::Float32 => Some(2),
        DataType::Float64 => Some(3),
        _ => None,
    }
}

fn unit_rank(u: &TimeUnit) -> u8 {
    match u {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 2,
        TimeUnit::Microsecond => 3,
        TimeUnit::Nanosecond => 4,
    }
}

/// Whether every value of type `from` is a value of type `to` (a cast from
/// `from` to `to` loses nothing). Equal types included.
pub fn widens_to(from: &DataType, to: &DataType) -> bool {
    if from == to {
        return true;
    }
    use DataType::*;
    let strings = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let binaries = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView);
    match (from, to) {
        (a, b) if (strings(a) && strings(b)) || (binaries(a) && binaries(b)) => true,
        (Dictionary(_, values), b) => widens_to(values, b),
        (Timestamp(a, za), Timestamp(b, zb)) => za == zb && unit_rank(a) <= unit_rank(b),
        _ => match (int_rank(from), int_rank(to)) {
            (Some((sa, ra)), Some((sb, rb))) => sa == sb && ra <= rb,
            _ => matches!((float_rank(from), float_rank(to)), (Some(a), Some(b)) if a <= b),
        },
    }
}

/// The type a source column takes when a file has it as `file`: the
/// source's own (`Ok(None)`), a wider one (`Ok(Some)`), or an error when
/// neither holds the other's values.
fn reconcile(column: &str, source: &DataType, file: &DataType) -> Result<Option<DataType>, String> {
    if widens_to(file, source) {
        return Ok(None);
    }
    if widens_to(source, file) {
        return Ok(Some(file.clone()));
    }
    Err(format!(
        "column {column} has type {file} in this file where the source schema has {source}; neither is a widening of the other (int32->int64, float->double, timestamp to a finer unit, utf8<->large utf8), so the file cannot be read without losing or changing values"
    ))
}

/// How the source schema must change to read a file with schema `file`:
/// new columns (in the file's order) and widened types. Errors name the
/// column and both types. Columns the file lacks are not changes (they
/// read as NULL; see [`missing_required`]).
pub fn compare(file: &Schema, source: &SourceSchema) -> Result<Vec<Change>, ReadError> {
    let mut changes = Vec::new();
    for f in file.fields() {
        if source.partition_columns.contains(f.name()) {
            continue;
        }
        match source.file.field_with_name(f.name()) {
            Err(_) => changes.push(Change::Added {
                column: f.name().clone(),
                ty: f.data_type().clone(),
            }),
            Ok(known) => {
                if let Some(to) = reconcile(f.name(), known.data_type(), f.data_type())
                    .map_err(ReadError::Schema)?
                {
                    changes.push(Change::Widened {
                        column: f.name().clone(),
                        from: known.data_type().clone(),
                        to,
                    });
                }
            }
        }
    }
    Ok(changes)
}

/// The first of `required` the file lacks, as the error that quarantines it.
pub fn missing_required(file: &Schema, required: &[String]) -> Result<(), ReadError> {
    match required.iter().find(|c| file.field_with_name(c).is_err()) {
        Some(c) => Err(ReadError::Schema(format!(
            "column {c} is missing; [source] required_columns lists it"
        ))),
        None => Ok(()),
    }
}

impl SourceSchema {
    /// This schema with `changes` applied: widened columns keep their place,
    /// added ones go after the file columns (before the partition columns).
    pub fn evolve(&self, changes: &[Change]) -> SourceSchema {
        let mut fields: Vec<Field> = self
            .file
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for c in changes {
            match c {
                Change::Added { column, ty } => {
                    if !fields.iter().any(|f| f.name() == column) {
                        fields.push(Field::new(column, ty.clone(), true));
                    }
                }
                Change::Widened { column, to, .. } => {
                    if let Some(f) = fields.iter_mut().find(|f| f.name() == column) {
                        *f = f.clone().with_data_type(to.clone());
                    }
                }
            }
        }
        SourceSchema::new(
            Arc::new(Schema::new(fields)),
            self.partition_columns.clone(),
        )
    }
}

/// Where a source column's values come from in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Col {
    /// The `i`th column the reader yields, cast to the source type when set.
    File { i: usize, cast: Option<DataType> },
    /// The file lacks the column: NULL of this type.
    Null(DataType),
}

/// How to build the source schema's file columns from one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePlan {
    /// Root column indices of the file to read, ascending (the order the
    /// Parquet reader yields them in).
    pub projection: Vec<usize>,
    cols: Vec<Col>,
}

/// Plans reading a file with schema `file` as the columns of `target` (the
/// source schema's file columns). A file column whose type is not a
/// widening of the target's is an error (the schema must evolve first).
pub fn plan(file: &Schema, target: &Schema) -> Result<FilePlan, ReadError> {
    let mut found: Vec<(usize, Option<DataType>)> = Vec::new();
    let mut missing = Vec::new();
    for (t, want) in target.fields().iter().enumerate() {
        match file.index_of(want.name()) {
            Err(_) => missing.push(t),
            Ok(i) => {
                let have = file.field(i).data_type();
                if !widens_to(have, want.data_type()) {
                    return Err(ReadError::Schema(format!(
                        "column {} has type {have}, expected {} or a narrower type",
                        want.name(),
                        want.data_type()
                    )));
                }
                let cast = (have != want.data_type()).then(|| want.data_type().clone());
                found.push((i, cast));
            }
        }
    }
    let mut projection: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
    projection.sort_unstable();
    projection.dedup();
    let mut found = found.into_iter();
    let cols = target
        .fields()
        .iter()
        .enumerate()
        .map(|(t, f)| {
            if missing.contains(&t) {
                return Col::Null(f.data_type().clone());
            }
            match found.next() {
                Some((i, cast)) => Col::File {
                    i: projection.binary_search(&i).unwrap_or(0),
                    cast,
                },
                None => Col::Null(f.data_type().clone()),
            }
        })
        .collect();
    Ok(FilePlan { projection, cols })
}

impl FilePlan {
    /// The source columns of `n` rows from the columns the reader yielded.
    pub fn conform(&self, read: &[ArrayRef], n: usize) -> Result<Vec<ArrayRef>, ReadError> {
        self.cols
            .iter()
            .map(|c| match c {
                Col::Null(ty) => Ok(new_null_array(ty, n)),
                Col::File { i, cast } => {
                    let a = read.get(*i).ok_or_else(|| {
                        ReadError::Schema(format!("the reader yielded no column {i}"))
                    })?;
                    match cast {
                        None => Ok(a.clone()),
                        Some(ty) => {
                            let opts = arrow::compute::CastOptions {
                                safe: false,
                                ..Default::default()
                            };
                            Ok(arrow::compute::cast_with_options(a, ty, &opts)?)
                        }
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int32Array, StringArray};

    fn source(fields: Vec<Field>) -> SourceSchema {
        SourceSchema::new(Arc::new(Schema::new(fields)), vec!["dt".into()])
    }

    #[test]
    fn widening_is_one_way_except_large_strings() {
        use DataType::*;
        assert!(widens_to(&Int32, &Int64));
        assert!(!widens_to(&Int64, &Int32));
        assert!(!widens_to(&UInt32, &Int64));
        assert!(widens_to(&Float32, &Float64));
        assert!(!widens_to(&Int32, &Float64));
        assert!(widens_to(
            &Timestamp(TimeUnit::Millisecond, None),
            &Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(!widens_to(
            &Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            &Timestamp(TimeUnit::Microsecond, None)
        ));
        assert!(widens_to(&Utf8, &LargeUtf8) && widens_to(&LargeUtf8, &Utf8));
        assert!(!widens_to(&Utf8, &Int64));
    }

    #[test]
    fn new_columns_and_wider_types_are_changes_narrower_types_are_not() {
        let s = source(vec![
            Field::new("id", DataType::Int32, true),
            Field::new("v", DataType::Float64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let file = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("v", DataType::Float32, true),
            Field::new("new_col", DataType::Utf8, true),
            Field::new("dt", DataType::Utf8, true),
        ]);
        let changes = compare(&file, &s).unwrap();
        assert_eq!(
            changes,
            vec![
                Change::Widened {
                    column: "id".into(),
                    from: DataType::Int32,
                    to: DataType::Int64
                },
                Change::Added {
                    column: "new_col".into(),
                    ty: DataType::Utf8
                },
            ]
        );
        assert_eq!(changes[1].to_string(), "gained column new_col (Utf8)");
        let evolved = s.evolve(&changes);
        let names: Vec<&str> = evolved
            .full
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["id", "v", "name", "new_col", "dt"]);
        assert_eq!(evolved.file.field(0).data_type(), &DataType::Int64);
        // Evolved, the same file needs nothing more.
        assert!(compare(&file, &evolved).unwrap().is_empty());
        // Another form of the same strings fits as it is.
        let large = Schema::new(vec![Field::new("name", DataType::LargeUtf8, true)]);
        assert!(compare(&large, &evolved).unwrap().is_empty());
        let dict = Schema::new(vec![Field::new(
            "name",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        )]);
        assert!(compare(&dict, &evolved).unwrap().is_empty());
    }

    #[test]
    fn an_incompatible_type_names_the_column_and_both_types() {
        let s = source(vec![Field::new("amount", DataType::Utf8, true)]);
        let file = Schema::new(vec![Field::new("amount", DataType::Int64, true)]);
        let e = compare(&file, &s).unwrap_err().to_string();
        assert!(
            e.contains(
                "column amount has type Int64 in this file where the source schema has Utf8"
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_columns_read_as_null_and_narrow_ones_are_cast() {
        let target = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("gone", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        let file = Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("extra", DataType::Utf8, true),
            Field::new("id", DataType::Int32, true),
        ]);
        let p = plan(&file, &target).unwrap();
        assert_eq!(p.projection, vec![0, 2]);
        // The reader yields name, id (file order).
        let read: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(Int32Array::from(vec![1, 2])),
        ];
        let cols = p.conform(&read, 2).unwrap();
        assert_eq!(cols[0].data_type(), &DataType::Int64);
        assert_eq!(cols[1].null_count(), 2);
        assert_eq!(cols[1].data_type(), &DataType::Utf8);
        assert_eq!(cols[2].len(), 2);
        let wider = Schema::new(vec![Field::new("id", DataType::Float64, true)]);
        assert!(plan(&wider, &target).is_err());
    }

    #[test]
    fn other_forms_of_strings_are_cast_to_the_sources() {
        use arrow::array::{DictionaryArray, LargeStringArray};
        use arrow::datatypes::Int32Type;
        let target = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let file = Schema::new(vec![
            Field::new("a", DataType::LargeUtf8, true),
            Field::new("b", dict, true),
        ]);
        let p = plan(&file, &target).unwrap();
        let read: Vec<ArrayRef> = vec![
            Arc::new(LargeStringArray::from(vec!["x", "y"])),
            Arc::new(DictionaryArray::<Int32Type>::from_iter(["p", "p"])),
        ];
        let cols = p.conform(&read, 2).unwrap();
        let a = cols[0].as_any().downcast_ref::<StringArray>().unwrap();
        let b = cols[1].as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((a.value(1), b.value(0)), ("y", "p"));
    }

    #[test]
    fn a_required_column_a_file_lacks_is_named() {
        let file = Schema::new(vec![Field::new("a", DataType::Utf8, true)]);
        missing_required(&file, &["a".into()]).unwrap();
        let e = missing_required(&file, &["a".into(), "id".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column id is missing; [source] required_columns lists it"),
            "{e}"
        );
    }
}
