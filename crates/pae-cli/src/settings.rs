//! The settings `pae run` and `pae submit` store with a run, and read back
//! by `pae resume` and `pae worker` to build the same agent.

use serde::{Deserialize, Serialize};

use crate::cli::{AgentArgs, ModelArgs};
use crate::exit::{Failure, FailureKind};
use crate::provider;

/// The settings the CLI stores with a run, so any process can run it the
/// same way. Never holds secrets: keys come from the environment, and
/// credentials in a base URL are removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSettings {
    format: String,
    pub(crate) model: ModelArgs,
    pub(crate) agent: AgentArgs,
}

const SETTINGS_FORMAT: &str = "pae-cli-settings/1";

impl StoredSettings {
    pub(crate) fn new(model: &ModelArgs, agent: &AgentArgs) -> Self {
        let mut model = model.clone();
        model.base_url = model
            .base_url
            .map(|url| provider::without_credentials(&url));
        // A model file named by a relative path or PAE_MODEL is stored as
        // the absolute path it resolved to, so a resume elsewhere finds it.
        if provider::provider(&model) == crate::cli::Provider::Local {
            let path = provider::local_model_path(&model);
            model.model = Some(std::fs::canonicalize(&path).unwrap_or(path));
        }
        let mut agent = agent.clone();
        if let Some(root) = &agent.files_root {
            agent.files_root = Some(std::fs::canonicalize(root).unwrap_or_else(|_| root.clone()));
        }
        Self {
            format: SETTINGS_FORMAT.to_owned(),
            model,
            agent,
        }
    }
}

impl StoredSettings {
    /// The settings stored with a run by the command line.
    pub(crate) fn of(record: &pae_core::store::RunRecord) -> Result<Self, Failure> {
        serde_json::from_value(record.settings.clone()).map_err(|_| {
            Failure::new(
                FailureKind::Store,
                format!(
                    "run {} was not started by the pae command line (its settings are not \
                     {SETTINGS_FORMAT}); resume it from the program that started it",
                    record.id
                ),
            )
        })
    }
}
