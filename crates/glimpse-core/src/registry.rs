//! Which loaded model answers a given model name.
//!
//! With no aliases configured, any name maps to the (single) loaded model, so client code written for
//! `gemini-3-flash-preview` works unchanged. Once aliases are configured, only model ids and aliases resolve and
//! anything else is NOT_FOUND, as the real API answers.

use std::collections::HashMap;
use std::sync::Arc;

use crate::admission::{AdmissionConfig, Admitted};
use crate::engine::Engine;
use crate::metered::Metered;

/// A model name as clients write it (`models/x`, `tunedModels/x` or `x`), without its collection prefix.
pub fn bare_model_name(name: &str) -> &str {
    name.strip_prefix("models/").or_else(|| name.strip_prefix("tunedModels/")).unwrap_or(name)
}

pub struct ModelRegistry {
    engines: Vec<Arc<dyn Engine>>,
    aliases: HashMap<String, usize>,
    admission: AdmissionConfig,
}

impl ModelRegistry {
    pub fn new() -> Self {
        ModelRegistry::with_admission(AdmissionConfig::default())
    }

    /// A registry whose models admit work as `admission` says.
    pub fn with_admission(admission: AdmissionConfig) -> Self {
        ModelRegistry { engines: Vec::new(), aliases: HashMap::new(), admission }
    }

    /// Adds a model under its id and the given aliases; its work is admitted ([`Admitted`]) and measured
    /// ([`Metered`], whose queue wait includes the admission queue).
    pub fn add(&mut self, engine: Arc<dyn Engine>, aliases: &[String]) {
        let index = self.engines.len();
        for alias in aliases {
            self.aliases.insert(alias.clone(), index);
        }
        self.engines.push(Metered::wrap(Admitted::wrap(engine, self.admission)));
    }

    pub fn engines(&self) -> &[Arc<dyn Engine>] {
        &self.engines
    }

    /// Aliases of the model at `index`, sorted.
    fn aliases_of(&self, index: usize) -> Vec<String> {
        let mut names: Vec<String> =
            self.aliases.iter().filter(|(_, i)| **i == index).map(|(name, _)| name.clone()).collect();
        names.sort();
        names
    }

    /// Every name clients can address, with its model: each model's id, then its aliases (sorted).
    pub fn names(&self) -> Vec<(String, &Arc<dyn Engine>)> {
        let mut names = Vec::new();
        for (index, engine) in self.engines.iter().enumerate() {
            names.push((engine.info().id.clone(), engine));
            names.extend(self.aliases_of(index).into_iter().map(|alias| (alias, engine)));
        }
        names
    }

    /// True when any model name maps to the single loaded model.
    pub fn is_catch_all(&self) -> bool {
        self.aliases.is_empty() && self.engines.len() == 1
    }

    /// Resolves `models/x`, `tunedModels/x` or a bare `x`.
    pub fn resolve(&self, name: &str) -> Option<Arc<dyn Engine>> {
        let bare = bare_model_name(name);
        if let Some(engine) = self.engines.iter().find(|e| e.info().id == bare) {
            return Some(engine.clone());
        }
        if let Some(&index) = self.aliases.get(bare) {
            return Some(self.engines[index].clone());
        }
        if self.is_catch_all() {
            return self.engines.first().cloned();
        }
        None
    }
}

impl Default for ModelRegistry {
    fn default() -> Self {
        Self::new()
    }
}
