//! Shared set-up of the PingOne client tests: a seeded simulator on loopback and a client
//! whose clock is the simulator's.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use pingone_aic_operator::pingone::clock::Clock;
use pingone_aic_operator::pingone::{
    Credentials, Endpoints, PingOne, PingOneConfig, PingOneSession, TokenAuthMethod,
    WorkerApplication,
};
use pingone_aic_operator::secret::SecretString;
use pingone_aic_sim::config::SimConfig;
use pingone_aic_sim::control::{ServerGuard, SimControl, serve_loopback};
use pingone_aic_sim::pingone::PingOneSim;

pub const SEED: &str = r#"
pingone:
  pageSize: 100
  youngEnvironmentSeconds: 17
  organizations:
    - name: Example Corp
      environments:
        - { name: Administrators, region: EU, type: PRODUCTION }
        - { name: Dev, region: EU }
        - { name: Other, region: EU }
  workers:
    - name: operator
      environment: Administrators
      secret: operator-secret-0123456789-0123456789-0123456789-0123456789-abcd
      roles:
        - { role: Environment Admin, scopeType: ORGANIZATION }
    - name: post-worker
      environment: Dev
      secret: post-worker-secret-0123456789-0123456789-0123456789-0123456789
      tokenEndpointAuthMethod: CLIENT_SECRET_POST
      roles:
        - { role: Client Application Developer, scope: Dev }
    - name: disabled-worker
      environment: Dev
      secret: disabled-worker-secret-0123456789-0123456789-0123456789-012345
      enabled: false
    - name: org-admin
      environment: Administrators
      roles:
        - { role: Organization Admin, scopeType: ORGANIZATION }
"#;

/// A client clock tied to the simulator's: sleeping moves both forward at once, so retry
/// schedules, token lifetimes and young environments play out without waiting.
#[derive(Clone)]
pub struct LinkedClock {
    pub control: SimControl,
    pub sleeps: Arc<Mutex<Vec<Duration>>>,
}

impl LinkedClock {
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

impl Clock for LinkedClock {
    fn now(&self) -> jiff::Timestamp {
        self.control.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleeps.lock().unwrap().push(duration);
        self.control.advance(duration);
        Box::pin(futures::future::ready(()))
    }
}

pub struct Fixture {
    pub sim: PingOneSim,
    pub server: ServerGuard,
    pub clock: LinkedClock,
    pub client: PingOne,
    pub dev: String,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_config(PingOneConfig {
            propagation_window: Duration::from_secs(20),
            ..PingOneConfig::default()
        })
        .await
    }

    pub async fn with_config(config: PingOneConfig) -> Self {
        let seed = SimConfig::parse(SEED).unwrap();
        let control = SimControl::new();
        let sim = PingOneSim::new(seed.pingone, control.clone()).unwrap();
        let server = serve_loopback(sim.app()).await.unwrap();
        let clock = LinkedClock {
            control,
            sleeps: Arc::default(),
        };
        let client = PingOne::with_clock(config, Arc::new(clock.clone())).unwrap();
        let dev = sim.environment_id("Dev").unwrap();
        Self {
            sim,
            server,
            clock,
            client,
            dev,
        }
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints::custom(
            &format!("{}/v1", self.server.base_url),
            &self.server.base_url,
        )
        .unwrap()
    }

    pub fn credentials(&self, worker: &str) -> Credentials {
        let seeded = self
            .sim
            .workers()
            .into_iter()
            .find(|w| w.name == worker)
            .unwrap();
        Credentials {
            environment_id: seeded.environment_id,
            client_id: seeded.id,
            client_secret: seeded.secret.into(),
            auth_method: match seeded.token_endpoint_auth_method.as_str() {
                "CLIENT_SECRET_POST" => TokenAuthMethod::ClientSecretPost,
                _ => TokenAuthMethod::ClientSecretBasic,
            },
        }
    }

    pub fn session(&self, worker: &str) -> PingOneSession {
        self.client
            .session(self.endpoints(), self.credentials(worker))
    }

    pub fn worker_session(&self, id: &str, secret: SecretString) -> PingOneSession {
        self.client.session(
            self.endpoints(),
            Credentials {
                environment_id: self.dev.clone(),
                client_id: id.to_owned(),
                client_secret: secret,
                auth_method: TokenAuthMethod::ClientSecretBasic,
            },
        )
    }

    pub fn control(&self) -> &SimControl {
        self.sim.control()
    }
}

pub fn worker(name: &str) -> WorkerApplication {
    WorkerApplication {
        name: name.to_owned(),
        description: Some("Managed by pingone-aic-operator".into()),
        enabled: true,
        token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
    }
}
