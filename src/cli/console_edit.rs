//! [`ServeConsole::edit_config`]: a change to the config file asked through the admin API
//! (`"persist": true` on `POST /providers/runtime`), made with the same format-preserving
//! editor as the `provider` and `routing` commands, then put in force by a reload.
//!
//! It never writes over an edit it has not seen: the file on disk must be the bytes the config
//! in force was loaded from (its [`Fingerprint`]). A hand edit the running helper has not
//! taken yet (or could not: an invalid one) is answered 409, with the file untouched.

use std::sync::{Mutex, PoisonError};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::console::{Reload, ServeConsole};
use crate::admin::Problem;
use crate::config::edit::{ConfigEditor, InvalidEdit};
use crate::config::load::Fingerprint;
use crate::proxy::ProxyState;

/// One edit at a time: two edits read from the same bytes would each pass the check and the
/// second would lose the first.
static ONE_EDIT: Mutex<()> = Mutex::new(());

/// What an edit gave back, and what the reload that followed said.
#[derive(Debug)]
pub struct Edited<T> {
    pub value: T,
    pub reloaded: String,
}

impl ServeConsole {
    /// Opens the config file, refuses ([`Problem::conflict`]) when it is not what the config
    /// in force was loaded from, applies `edit`, checks the result as `serve` would (an edit
    /// that breaks the config is the caller's mistake: [`Problem::bad_request`]), writes it
    /// (`.bak` kept, atomically), and reloads. Runs on a blocking thread.
    pub fn edit_config<T: Send + 'static>(
        &self,
        edit: impl FnOnce(&mut ConfigEditor) -> anyhow::Result<T> + Send + 'static,
    ) -> BoxFuture<'static, anyhow::Result<Edited<T>>> {
        let (state, reload) = (self.state.clone(), self.reload.clone());
        async move { tokio::task::spawn_blocking(move || edit_now(&state, &reload, edit)).await? }
            .boxed()
    }
}

fn edit_now<T>(
    state: &ProxyState,
    reload: &Reload,
    edit: impl FnOnce(&mut ConfigEditor) -> anyhow::Result<T>,
) -> anyhow::Result<Edited<T>> {
    let _one = ONE_EDIT.lock().unwrap_or_else(PoisonError::into_inner);
    let path = &state.config_path;
    let mut editor = ConfigEditor::open(path)?;
    let on_disk = editor.original().map(Fingerprint::of);
    if on_disk != Some(state.plan().config_fingerprint) {
        return Err(Problem::conflict(format!(
            "{} changed on disk since it was loaded; reload first (POST /runtime/reload)",
            path.display()
        ))
        .into());
    }
    let value = edit(&mut editor)?;
    editor
        .save(&crate::routing::check_config)
        .map_err(|e| match e.downcast::<InvalidEdit>() {
            Ok(invalid) => Problem::bad_request(invalid.to_string()).into(),
            Err(e) => e,
        })?;
    let reloaded = reload().map_err(|e| {
        anyhow::anyhow!(
            "{} was written, but reloading it failed: {e:#}; the previous config is still in force",
            path.display()
        )
    })?;
    Ok(Edited { value, reloaded })
}
