//! Registered datasets: a descriptor (TOML) naming the files, the privacy unit, and the public
//! metadata of each column; and the catalogue of them a host serves.

use oar_guest::schema::{ColumnSchema, ColumnType, DatasetSchema};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File format of a dataset's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Apache Parquet.
    Parquet,
    /// Comma-separated values with a header row.
    Csv,
}

/// Where the rows live.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// File format.
    pub format: SourceFormat,
    /// Files, relative to the descriptor's folder unless absolute.
    pub paths: Vec<PathBuf>,
}

/// A dataset descriptor as written by the holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// Name plans use.
    pub name: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// Who holds it.
    #[serde(default)]
    pub owner: String,
    /// Free description.
    #[serde(default)]
    pub description: String,
    /// How often the holder refreshes the data (free text: "daily", "monthly").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub update_frequency: String,
    /// List the dataset in the public catalogue (`oar serve`'s `/datasets` page): its name,
    /// title, owner, description, period and column metadata, never a row. Off unless the
    /// holder says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// The rows.
    pub source: Source,
    /// The column identifying a person.
    pub privacy_unit: String,
    /// Default bound on the cells one unit adds to.
    pub max_groups_per_unit: u32,
    /// Default bound on one unit's rows per cell (for sums).
    #[serde(default = "one")]
    pub max_rows_per_group: u32,
    /// Public metadata of the columns plans may use.
    pub columns: Vec<ColumnSchema>,
}

fn one() -> u32 {
    1
}

/// Errors registering or reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The descriptor could not be read.
    #[error("dataset descriptor {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The descriptor is invalid.
    #[error("dataset descriptor {path}: {message}")]
    Descriptor {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The data files do not match the descriptor.
    #[error("dataset '{name}': {message}")]
    Data {
        /// The dataset.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// A dataset ready to be queried.
#[derive(Debug, Clone)]
pub struct Dataset {
    descriptor: Descriptor,
    files: Vec<PathBuf>,
}

impl Dataset {
    /// Loads a descriptor and checks it against its files' schema.
    pub fn open(path: &Path) -> Result<Dataset, DatasetError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: shown.clone(),
            source,
        })?;
        let descriptor: Descriptor =
            toml::from_str(&text).map_err(|e| DatasetError::Descriptor {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_descriptor(descriptor, base, &shown)
    }

    /// Builds a dataset from a parsed descriptor whose relative paths are under `base`.
    pub fn from_descriptor(
        descriptor: Descriptor,
        base: &Path,
        origin: &str,
    ) -> Result<Dataset, DatasetError> {
        let bad = |message: String| DatasetError::Descriptor {
            path: origin.to_string(),
            message,
        };
        if descriptor.source.paths.is_empty() {
            return Err(bad("source.paths is empty; name at least one file".into()));
        }
        if descriptor.max_groups_per_unit == 0 || descriptor.max_rows_per_group == 0 {
            return Err(bad("contribution bounds must be at least 1".into()));
        }
        for c in &descriptor.columns {
            if c.name == descriptor.privacy_unit {
                return Err(bad(format!(
                    "column '{}' is the privacy unit; it must not be listed among the columns plans may use",
                    c.name
                )));
            }
            if let Some([lo, hi]) = c.bounds {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(bad(format!(
                        "column '{}': bounds must be finite with lower <= upper",
                        c.name
                    )));
                }
            }
            if let Some([from, to]) = &c.period {
                let parse = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d");
                match (parse(from), parse(to)) {
                    (Ok(a), Ok(b)) if a <= b => {}
                    _ => {
                        return Err(bad(format!(
                            "column '{}': period must be two YYYY-MM-DD dates, first <= last",
                            c.name
                        )))
                    }
                }
            }
        }
        let files = descriptor
            .source
            .paths
            .iter()
            .map(|p| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    base.join(p)
                }
            })
            .collect();
        let ds = Dataset { descriptor, files };
        ds.check_files()?;
        Ok(ds)
    }

    fn check_files(&self) -> Result<(), DatasetError> {
        let data_err = |message: String| DatasetError::Data {
            name: self.descriptor.name.clone(),
            message,
        };
        for f in &self.files {
            if !f.exists() {
                return Err(data_err(format!("file {} does not exist", f.display())));
            }
        }
        let schema = self
            .scan()
            .map_err(|e| data_err(e.to_string()))?
            .collect_schema()
            .map_err(|e| data_err(format!("cannot read the files' schema: {e}")))?;
        let mut wanted: Vec<(&str, Option<ColumnType>)> =
            vec![(self.descriptor.privacy_unit.as_str(), None)];
        wanted.extend(
            self.descriptor
                .columns
                .iter()
                .map(|c| (c.name.as_str(), Some(c.dtype))),
        );
        for (name, ty) in wanted {
            let Some(actual) = schema.get(name) else {
                return Err(data_err(format!("the files have no column '{name}'")));
            };
            if let Some(ty) = ty {
                if !dtype_matches(ty, actual) {
                    return Err(data_err(format!(
                        "column '{name}' is declared {ty:?} but the files hold {actual}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The dataset's name.
    pub fn name(&self) -> &str {
        &self.descriptor.name
    }

    /// The descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The files holding the rows, as resolved paths (for backends that read them themselves).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The privacy-unit column.
    pub fn privacy_unit(&self) -> &str {
        &self.descriptor.privacy_unit
    }

    /// Public metadata only: what a module may see.
    pub fn schema(&self) -> DatasetSchema {
        DatasetSchema {
            name: self.descriptor.name.clone(),
            title: self.descriptor.title.clone(),
            privacy_unit: self.descriptor.privacy_unit.clone(),
            columns: self.descriptor.columns.clone(),
            max_groups_per_unit: self.descriptor.max_groups_per_unit,
            max_rows_per_group: self.descriptor.max_rows_per_group,
        }
    }

    /// Identifies this snapshot of the data: a digest of the descriptor and each file's path,
    /// size and modification time. A changed file gives a new id (and so a fresh release).
    pub fn snapshot_id(&self) -> std::io::Result<String> {
        let mut parts = vec![serde_json::to_vec(&self.descriptor).expect("descriptors serialize")];
        for f in &self.files {
            let meta = std::fs::metadata(f)?;
            let modified = meta
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            parts.push(format!("{}|{}|{modified}", f.display(), meta.len()).into_bytes());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Ok(hex::encode(sha256_parts(&refs)))
    }

    /// A lazy scan of all files.
    ///
    /// CSV columns are read as their declared types, whatever the first rows look like, and a
    /// value that does not parse as its column's type reads as null (so a float column whose
    /// first rows are whole numbers still reads a later `NaN`, and no value can make a scan
    /// fail: whether a query fails must not depend on the data). An empty text field reads as
    /// null, quoted (`""`) or not, as every engine's CSV reader can tell.
    pub fn scan(&self) -> PolarsResult<LazyFrame> {
        let frames = self
            .files
            .iter()
            .map(|f| {
                let path = PlPath::new(&f.to_string_lossy());
                match self.descriptor.source.format {
                    SourceFormat::Parquet => {
                        LazyFrame::scan_parquet(path, ScanArgsParquet::default())
                    }
                    SourceFormat::Csv => LazyCsvReader::new(path)
                        .with_has_header(true)
                        .with_try_parse_dates(true)
                        .with_dtype_overwrite(Some(self.csv_types()))
                        .with_ignore_errors(true)
                        .finish()
                        .map(|lf| self.empty_text_as_null(lf)),
                }
            })
            .collect::<PolarsResult<Vec<_>>>()?;
        if frames.len() == 1 {
            Ok(frames.into_iter().next().unwrap())
        } else {
            concat(frames, UnionArgs::default())
        }
    }
}

impl Dataset {
    /// `lf` with the empty strings of the unit and of every declared text column as nulls
    /// (Polars reads a quoted
    /// empty field as an empty string; Arrow's reader, as DataFusion's, cannot tell it from an
    /// unquoted one, which is null).
    fn empty_text_as_null(&self, lf: LazyFrame) -> LazyFrame {
        let unit = self.descriptor.privacy_unit.as_str();
        // The unit's type is not declared: it is compared as text and otherwise left as read.
        let mut text = vec![when(col(unit).cast(DataType::String).eq(lit("")))
            .then(lit(NULL))
            .otherwise(col(unit))
            .alias(unit)];
        text.extend(
            self.descriptor
                .columns
                .iter()
                .filter(|c| c.dtype == ColumnType::Str)
                .map(|c| {
                    let name = c.name.as_str();
                    when(col(name).eq(lit("")))
                        .then(lit(NULL).cast(DataType::String))
                        .otherwise(col(name))
                        .alias(name)
                }),
        );
        lf.with_columns(text)
    }

    /// The Polars types the declared columns are read as from CSV (dates and datetimes are left
    /// to the reader's date parsing).
    fn csv_types(&self) -> SchemaRef {
        let fields = self.descriptor.columns.iter().filter_map(|c| {
            let dtype = match c.dtype {
                ColumnType::Float => DataType::Float64,
                ColumnType::Int => DataType::Int64,
                ColumnType::Str => DataType::String,
                ColumnType::Bool => DataType::Boolean,
                ColumnType::Date | ColumnType::Datetime => return None,
            };
            Some(Field::new(c.name.as_str().into(), dtype))
        });
        std::sync::Arc::new(Schema::from_iter(fields))
    }
}

/// SHA-256 over length-prefixed parts (the same framing as the host's `keys::sha256_parts`).
fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

fn dtype_matches(ty: ColumnType, actual: &DataType) -> bool {
    match ty {
        ColumnType::Str => matches!(actual, DataType::String | DataType::Categorical(..)),
        ColumnType::Int => actual.is_integer(),
        ColumnType::Float => actual.is_float() || actual.is_integer(),
        ColumnType::Bool => matches!(actual, DataType::Boolean),
        ColumnType::Date => matches!(actual, DataType::Date),
        ColumnType::Datetime => matches!(actual, DataType::Datetime(..)),
    }
}

/// The datasets a host serves, by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    datasets: BTreeMap<String, Arc<Dataset>>,
}

impl Catalog {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a dataset; a later one with the same name replaces the earlier.
    pub fn register(&mut self, dataset: Dataset) {
        self.datasets
            .insert(dataset.name().to_string(), Arc::new(dataset));
    }

    /// The dataset called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Dataset>> {
        self.datasets.get(name)
    }

    /// All dataset names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.datasets.keys().map(String::as_str)
    }
}
