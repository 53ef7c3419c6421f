//! Restarts (`/environment/startup`): status, restart, and polling that tolerates the
//! intermittent 500s AIC returns while its services restart.

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use super::{AicClient, AicError, ApiFamily, Call, RestartApi, api_version};

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
pub async fn wait_until_ready<A: RestartApi>(api: &A, poll: Poll) -> Result<(), AicError> {
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
pub async fn restart_if_pending<A: RestartApi>(
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
            .json(
                Call::new(
                    Method::GET,
                    ApiFamily::Esv,
                    api_version::ESV,
                    "/environment/startup".into(),
                )
                .polled(),
            )
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
        self.note_restart_requested();
        let body: StatusBody = self.json(call).await?;
        Ok(body.restart_status)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use http::StatusCode;

    use super::*;
    use crate::aic::{ApiFamily, EsvCount};

    /// A scripted tenant: status answers in order, a pending count, restarts counted.
    struct Fake {
        statuses: Mutex<VecDeque<Result<RestartStatus, StatusCode>>>,
        pending: EsvCount,
        restarts: Mutex<u32>,
    }

    impl Fake {
        fn new(pending: u64, statuses: Vec<Result<RestartStatus, StatusCode>>) -> Self {
            Self {
                statuses: Mutex::new(statuses.into()),
                pending: EsvCount {
                    secrets: 0,
                    variables: pending,
                },
                restarts: Mutex::new(0),
            }
        }
    }

    impl RestartApi for Fake {
        async fn pending_count(&self) -> Result<EsvCount, AicError> {
            Ok(self.pending)
        }
        async fn restart_status(&self) -> Result<RestartStatus, AicError> {
            let next = self
                .statuses
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Ok(RestartStatus::Ready));
            next.map_err(|status| AicError::from_response(ApiFamily::Esv, status, None, b"{}"))
        }
        async fn restart(&self) -> Result<RestartStatus, AicError> {
            *self.restarts.lock().unwrap() += 1;
            Ok(RestartStatus::Restarting)
        }
    }

    fn quick(errors: u32) -> Poll {
        Poll {
            interval: Duration::from_millis(1),
            timeout: Duration::from_secs(10),
            max_consecutive_errors: errors,
        }
    }

    #[tokio::test]
    async fn nothing_pending_means_no_restart() {
        let fake = Fake::new(0, vec![Ok(RestartStatus::Ready)]);
        assert_eq!(
            restart_if_pending(&fake, Some(quick(3))).await.unwrap(),
            RestartOutcome::NothingPending
        );
        assert_eq!(*fake.restarts.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn a_running_restart_is_waited_for_not_repeated() {
        use RestartStatus::*;
        let fake = Fake::new(2, vec![Ok(Restarting), Ok(Restarting), Ok(Ready)]);
        assert_eq!(
            restart_if_pending(&fake, Some(quick(3))).await.unwrap(),
            RestartOutcome::AlreadyRestarting
        );
        assert_eq!(*fake.restarts.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn intermittent_500s_are_tolerated_but_a_403_is_not() {
        use RestartStatus::*;
        let e500 = Err(StatusCode::INTERNAL_SERVER_ERROR);
        let fake = Fake::new(
            1,
            vec![
                Ok(Ready),
                Ok(Restarting),
                e500,
                e500,
                Ok(Restarting),
                e500,
                e500,
                e500,
                Ok(Ready),
            ],
        );
        assert_eq!(
            restart_if_pending(&fake, Some(quick(3))).await.unwrap(),
            RestartOutcome::Restarted
        );
        assert_eq!(*fake.restarts.lock().unwrap(), 1);
        let fake = Fake::new(1, vec![Ok(Restarting), Err(StatusCode::FORBIDDEN)]);
        let err = wait_until_ready(&fake, quick(3)).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    }
}
