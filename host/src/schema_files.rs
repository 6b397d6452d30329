//! The JSON Schemas checked in under `guest-sdk/schema/` (see [`oar_guest::json_schema`]) and
//! `oar schema`, which writes them.

use std::path::{Path, PathBuf};

/// Where the schemas are checked in, relative to the repository root.
pub const CHECKED_IN: &str = "guest-sdk/schema";

/// Writes every schema into `dir` (created if missing); returns the files written.
pub fn write(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    oar_guest::json_schema::files()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(CHECKED_IN)
    }

    /// The checked-in files are what the types generate: a change to a plan, schema or table
    /// type that is not re-published fails here.
    #[test]
    fn the_checked_in_json_schemas_match_the_types() {
        for (name, text) in oar_guest::json_schema::files() {
            let path = checked_in().join(name);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == text,
                "{} does not match the types; run `cargo run -p oar-host -- schema --out {CHECKED_IN}`",
                path.display()
            );
        }
    }

    /// `oar schema` writes the checked-in files, and a folder it cannot create is an error,
    /// not a partial write reported as success.
    #[test]
    fn write_produces_the_checked_in_files_and_reports_a_folder_it_cannot_create() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(&dir.path().join("schema")).unwrap();
        assert_eq!(written.len(), 3);
        for path in &written {
            let name = path.file_name().unwrap();
            assert_eq!(
                std::fs::read(path).unwrap(),
                std::fs::read(checked_in().join(name)).unwrap()
            );
        }
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        assert!(write(&file.join("schema")).is_err());
    }

    /// Unknown fields are refused by the schemas as by the host (`deny_unknown_fields`).
    #[test]
    fn the_plan_schema_refuses_unknown_fields_as_the_host_does() {
        let files = oar_guest::json_schema::files();
        let plan: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
        assert_eq!(plan["additionalProperties"], serde_json::json!(false));
        assert!(plan["properties"]["group_by"].is_object());
        assert!(plan["properties"].get("groupby").is_none());
    }
}
