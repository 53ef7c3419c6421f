//! Restarts (`/environment/startup`): status, restart, and polling that tolerates the
//! intermittent 500s AIC returns while its services restart.

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use super::{AicApi, AicClient, AicError, ApiFamily, Call, api_version};

/// `restartStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartStatus {
    /// Services run; ESV changes since the last restart are pending.
    Ready,
    /// A restart is under way.
    Restarting,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody {
    restart_status: RestartStatus,
}

/// How to poll for a state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Poll {
    /// Time between polls.
    pub interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
    /// Transient errors in a row that are tolerated before giving up.
    pub max_consecutive_errors: u32,
}

impl Poll {
    /// Restarts take 5–10 minutes; AIC tools poll every 5–10 s and tolerate several 500s.
    pub const RESTART: Poll = Poll {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(20 * 60),
        max_consecutive_errors: 10,
    };
}

/// Polls `/environment/startup` until `ready`. Transient errors (the 500s AIC answers while
/// restarting) are tolerated up to `poll.max_consecutive_errors` in a row.
pub async fn wait_until_ready<A: AicApi>(api: &A, poll: Poll) -> Result<(), AicError> {
    let deadline = tokio::time::Instant::now() + poll.timeout;
    let mut errors_in_a_row = 0;
    loop {
        match api.restart_status().await {
            Ok(RestartStatus::Ready) => return Ok(()),
            Ok(RestartStatus::Restarting) => errors_in_a_row = 0,
            Err(err) if err.is_transient() && errors_in_a_row < poll.max_consecutive_errors => {
                errors_in_a_row += 1;
                tracing::debug!(error = %err, errors_in_a_row, "restart status poll failed; still waiting");
            }
            Err(err) => return Err(err),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AicError::Timeout("the AIC restart to finish"));
        }
        tokio::time::sleep(poll.interval).await;
    }
}

/// What [`restart_if_pending`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartOutcome {
    /// Nothing was pending; no restart.
    NothingPending,
    /// A restart was already running; it was waited for instead of starting another.
    AlreadyRestarting,
    /// A restart was started (and, if asked, waited for).
    Restarted,
}

/// Restarts only when ESV changes are pending, and never on top of a running restart.
pub async fn restart_if_pending<A: AicApi>(
    api: &A,
    wait: Option<Poll>,
) -> Result<RestartOutcome, AicError> {
    if api.restart_status().await? == RestartStatus::Restarting {
        if let Some(poll) = wait {
            wait_until_ready(api, poll).await?;
        }
        return Ok(RestartOutcome::AlreadyRestarting);
    }
    if !api.pending_count().await?.any() {
        return Ok(RestartOutcome::NothingPending);
    }
    api.restart().await?;
    if let Some(poll) = wait {
        wait_until_ready(api, poll).await?;
    }
    Ok(RestartOutcome::Restarted)
}

impl AicClient {
    pub(crate) async fn startup_status(&self) -> Result<RestartStatus, AicError> {
        let body: StatusBody = self
            .json(Call::new(
                Method::GET,
                ApiFamily::Esv,
                api_version::ESV,
                "/environment/startup".into(),
            ))
            .await?;
        Ok(body.restart_status)
    }

    pub(crate) async fn startup_restart(&self) -> Result<RestartStatus, AicError> {
        let call = Call::new(
            Method::POST,
            ApiFamily::Esv,
            api_version::ESV,
            "/environment/startup".into(),
        )
        .query("_action", "restart");
        let body: StatusBody = self.json(call).await?;
        Ok(body.restart_status)
    }
}
