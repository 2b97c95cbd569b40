//! Multi-step creation that unwinds: each step pushes how to undo it; on failure the undos run
//! in reverse order and any cleanup failure is reported beside the original error.

use futures::future::BoxFuture;

type Step = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), String>> + Send>;

/// Undo steps of a half-done creation. Call [`Undo::commit`] on success; otherwise
/// [`Undo::unwind`] before returning the error.
#[derive(Default)]
pub struct Undo {
    steps: Vec<(&'static str, Step)>,
}

impl Undo {
    /// Registers how to undo the step just done.
    pub fn push<F>(&mut self, what: &'static str, f: F)
    where
        F: FnOnce() -> BoxFuture<'static, Result<(), String>> + Send + 'static,
    {
        self.steps.push((what, Box::new(f)));
    }

    /// Runs every undo in reverse; returns the failures as "what: error" strings.
    pub async fn unwind(self) -> Vec<String> {
        let mut failures = vec![];
        for (what, step) in self.steps.into_iter().rev() {
            if let Err(e) = step().await {
                failures.push(format!("undo {what}: {e}"));
            }
        }
        failures
    }

    /// The creation succeeded: nothing to undo.
    pub fn commit(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn unwinds_in_reverse_and_reports_failures() {
        let log = Arc::new(Mutex::new(vec![]));
        let mut undo = Undo::default();
        for name in ["first", "second", "third"] {
            let log = log.clone();
            undo.push(name, move || {
                Box::pin(async move {
                    log.lock().unwrap().push(name);
                    if name == "second" {
                        Err("boom".to_string())
                    } else {
                        Ok(())
                    }
                })
            });
        }
        let failures = undo.unwind().await;
        assert_eq!(*log.lock().unwrap(), ["third", "second", "first"]);
        assert_eq!(failures, ["undo second: boom"]);
    }
}
