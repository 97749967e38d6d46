//! Where the configured folders really are. [`check`] resolves symlinks
//! (the only I/O of config checking besides reading the file) and refuses a
//! sink or state folder that lies inside the source, or a source inside the
//! sink, once resolved: a symlinked sink inside the source would have sluice
//! read its own output. Only local roots have symlinks to resolve.

use super::{Config, ConfigError};
use std::path::{Path, PathBuf};

/// `p` with every symlink resolved: the longest existing ancestor is
/// canonicalized and the rest (not created yet) appended.
pub fn resolve(p: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p;
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            return rest.iter().rev().fold(real, |acc, c| acc.join(c));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// Refuses folders that overlap the source once symlinks are resolved.
/// Object-store roots are compared by bucket and prefix (done in
/// [`Config::from_raw`]); a local folder never overlaps a URL.
pub fn check(cfg: &Config) -> Result<(), ConfigError> {
    let Some(source_root) = cfg.source.root.local_root() else {
        return Ok(());
    };
    let source = resolve(source_root);
    let shown = |p: &Path, real: &Path| {
        if p == real {
            p.display().to_string()
        } else {
            format!("{} (really {})", p.display(), real.display())
        }
    };
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        path: cfg.path.clone(),
        key: key.to_string(),
        message,
    };
    if let Some(sink_root) = cfg.sink.root.local_root() {
        let sink = resolve(sink_root);
        if sink.starts_with(&source) || source.starts_with(&sink) {
            return Err(invalid(
                "sink.root",
                format!(
                    "{} and source.root {} overlap once symlinks are resolved; sluice would read its own output",
                    shown(sink_root, &sink),
                    shown(source_root, &source)
                ),
            ));
        }
    }
    let state = resolve(&cfg.state_dir);
    if state.starts_with(&source) {
        return Err(invalid(
            "state.dir",
            format!(
                "{} is inside source.root {} once symlinks are resolved; sluice would read its own state",
                shown(&cfg.state_dir, &state),
                shown(source_root, &source)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_symlinked_into_the_source_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("ods/out")).unwrap();
        std::os::unix::fs::symlink(d.path().join("ods/out"), d.path().join("dwd")).unwrap();
        let text = "version = 1\n[source]\nname = \"ods_events\"\nroot = \"ods\"\n[state]\ndir = \"state\"\n[sink]\nroot = \"dwd/x\"\n[rules]\ndir = \"rules\"\n";
        let cfg = d.path().join("sluice.toml");
        std::fs::write(&cfg, text).unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(e.contains("sink.root") && e.contains("really"), "{e}");
        assert!(e.contains("read its own output"), "{e}");
        std::fs::write(&cfg, text.replace("dwd/x", "elsewhere")).unwrap();
        assert!(Config::load(&cfg).is_ok());
        std::os::unix::fs::symlink(d.path().join("ods"), d.path().join("st")).unwrap();
        std::fs::write(
            &cfg,
            text.replace("dwd/x", "elsewhere")
                .replace("\"state\"", "\"st/s\""),
        )
        .unwrap();
        let e = Config::load(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("state.dir") && e.contains("its own state"),
            "{e}"
        );
        // An object-store sink is a multipart-upload sink.
        std::fs::write(&cfg, text.replace("dwd/x", "s3://b/dwd")).unwrap();
        Config::load(&cfg).unwrap();
    }
}
