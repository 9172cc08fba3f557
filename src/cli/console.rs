//! What the admin API serves from a running `serve`: the [`Console`] over its balance service.
//! Here, at the top, so the admin API and the balance engine need not know each other.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::admin::{Console, UnknownProvider};
use crate::balance::report::{EndpointBalance, RefreshReport};
use crate::balance::service::BalanceHandle;

pub struct ServeConsole {
    /// `None` when `[balance] enabled = false`.
    pub balances: Option<BalanceHandle>,
}

impl Console for ServeConsole {
    fn balances(&self) -> Vec<EndpointBalance> {
        self.balances
            .as_ref()
            .map(BalanceHandle::balances)
            .unwrap_or_default()
    }

    fn refresh_balances(
        &self,
        provider: Option<String>,
    ) -> BoxFuture<'static, anyhow::Result<RefreshReport>> {
        let handle = self.balances.clone();
        async move {
            let Some(handle) = handle else {
                anyhow::bail!(
                    "balance lookups are off in this codex-helper ([balance] enabled = false)"
                );
            };
            if let Some(id) = &provider {
                let known = handle.providers();
                if !known.contains(id) {
                    return Err(UnknownProvider {
                        id: id.clone(),
                        known,
                    }
                    .into());
                }
            }
            handle.refresh(provider).await
        }
        .boxed()
    }
}
