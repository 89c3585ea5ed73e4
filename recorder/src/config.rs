//! The recorder's configuration file, `/etc/dnsq/dnsq.toml` by default. Every key
//! is optional; a command-line flag overrides the key of the same name.
//!
//! ```toml
//! ports = [53, 5353]
//! payload_cap = 4096
//! ring_buffer_size = 8388608
//! db = "/var/lib/dnsq/dnsq.db"
//! retain = "30d"
//! max_db_size = "2G"
//! batch_size = 1000
//! batch_window = "1s"
//! store_thread = "auto"
//! nice = -5
//! log = "info"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the recorder looks when `--config` is not given. A missing file at this
/// default path is not an error; a missing file named by `--config` is.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/dnsq/dnsq.toml";

#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub ports: Option<Vec<u16>>,
    pub payload_cap: Option<u32>,
    pub ring_buffer_size: Option<u32>,
    pub db: Option<PathBuf>,
    pub retain: Option<String>,
    pub max_db_size: Option<String>,
    pub batch_size: Option<usize>,
    pub batch_window: Option<String>,
    pub store_thread: Option<crate::store::Placement>,
    pub nice: Option<i32>,
    pub log: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// toml's message names the key and shows the line.
    #[error("invalid configuration file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads the configuration: `explicit` (from `--config`) must exist; without it the
/// default path is read when present.
pub fn load(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if explicit.is_none() && error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(FileConfig::default());
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    parse(&text).map_err(|message| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    })
}

fn parse(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses() {
        let config = parse(
            "ports = [53, 5353]\npayload_cap = 4096\nring_buffer_size = 65536\n\
             db = \"/tmp/x.db\"\nretain = \"7d\"\nmax_db_size = \"1G\"\nbatch_size = 500\n\
             batch_window = \"2s\"\nstore_thread = \"no\"\nnice = -3\nlog = \"debug\"\n",
        )
        .unwrap();
        assert_eq!(config.ports, Some(vec![53, 5353]));
        assert_eq!(config.store_thread, Some(crate::store::Placement::No));
        assert_eq!(config.db.as_deref(), Some(Path::new("/tmp/x.db")));
        assert_eq!(config.batch_size, Some(500));
        assert_eq!(config.nice, Some(-3));
    }

    /// The file `make install` puts at /etc/dnsq/dnsq.toml parses, with the
    /// defaults it states.
    #[test]
    fn the_installed_file_parses() {
        let config = parse(include_str!("../../dist/dnsq.toml")).unwrap();
        assert_eq!(config.nice, Some(crate::privileges::DEFAULT_NICE));
        assert_eq!(config.store_thread, Some(crate::store::Placement::Auto));
        assert_eq!(config.ports, Some(vec![53]));
    }

    #[test]
    fn unknown_key_is_named() {
        let error = parse("portz = [53]\n").unwrap_err();
        assert!(error.contains("portz"), "{error}");
    }

    #[test]
    fn wrong_type_is_named() {
        let error = parse("payload_cap = \"big\"\n").unwrap_err();
        assert!(error.contains("payload_cap"), "{error}");
    }

    #[test]
    fn port_out_of_range_is_refused() {
        assert!(parse("ports = [70000]\n").is_err());
    }

    #[test]
    fn missing_default_file_is_no_error_but_missing_explicit_file_is() {
        let missing = Path::new("/nonexistent/dnsq.toml");
        assert!(matches!(load(Some(missing)), Err(ConfigError::Read { .. })));
        let dir = std::env::temp_dir().join(format!("dnsq-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dnsq.toml");
        std::fs::write(&file, "retain = 5\n").unwrap();
        let error = load(Some(&file)).unwrap_err().to_string();
        assert!(
            error.contains("retain") && error.contains("dnsq.toml"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
