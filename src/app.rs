//! The application: builds every part from [`Settings`], runs, and shuts down in order.
//! The binary and the tests start it the same way (tests with port 0).

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{middleware, web, App, HttpServer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::actors::fleet::Fleet;
use crate::actors::hub::Hub;
use crate::actors::machine::MachineDeps;
use crate::actors::state_writer;
use crate::config::{ConfigError, Secret, Settings};
use crate::domain::access::Role;
use crate::domain::mqtt_access::SERVICE_USERNAME;
use crate::domain::secrets::DataKey;
use crate::protocols::broker::{self, BrokerError};
use crate::protocols::mqtt::{BrokerAddress, MqttLink};
use crate::services::broker_access::{BrokerAccess, Directory, MosquittoError, MosquittoKeeper};
use crate::services::{self, Services};
use crate::store::{Store, StoreError};
use crate::web::auth::JwtKeys;
use crate::web::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    DataKey(#[from] services::machines::DataKeyError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("email settings: {0}")]
    Mail(#[from] crate::notify::email::MailError),
    #[error("cannot keep Mosquitto's files: {0}")]
    Mosquitto(#[from] MosquittoError),
    #[error("job files: {0}")]
    Files(#[from] crate::store::files::FilesError),
    #[error("cannot listen for HTTP on {0}: {1}")]
    Http(SocketAddr, std::io::Error),
}

/// A running makrcave.
pub struct Application {
    http_addr: SocketAddr,
    mqtt_addr: SocketAddr,
    state: web::Data<AppState>,
    server: ServerHandle,
    server_task: JoinHandle<std::io::Result<()>>,
    mqtt: MqttLink,
    /// Stops the MQTT link and the demo simulators.
    shutdown: CancellationToken,
    /// Stops the state writer once the actors are gone.
    writer_stop: CancellationToken,
    writer_task: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Starts everything. Must run inside an actix System (`#[actix_web::main]`,
    /// `#[actix_web::test]`), which machine actors need.
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        crate::install_crypto_provider();
        let settings = Arc::new(settings);
        let metrics = crate::metrics::recorder();
        let store = Store::connect(&settings.database_url).await?;
        tracing::info!(database = store.kind(), "database ready");
        let data_key = DataKey::derive(settings.data_key()?.expose());
        services::machines::check_data_key(&store, &data_key).await?;
        let auth = Arc::new(JwtKeys::from_settings(&settings)?);

        // Stops the MQTT link, the embedded broker's gate and the demo simulators.
        let shutdown = CancellationToken::new();
        let service_password = settings.mqtt_service_password()?;
        let service_login = || Some((SERVICE_USERNAME.to_string(), service_password.expose().to_string()));
        let (broker, mqtt_addr, broker_access) = match &settings.mqtt_broker {
            Some(external) => {
                let addr = tokio::net::lookup_host((external.host.as_str(), external.port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], external.port)));
                let mut broker = external.clone();
                let access = match &settings.mosquitto {
                    // makrcave writes Mosquitto's files, its own account included: the one in
                    // the URL if given, else its own from the data folder.
                    Some(files) => {
                        if broker.credentials.is_none() {
                            broker.credentials = service_login();
                        }
                        let (user, password) = broker.credentials.clone().unwrap_or_default();
                        BrokerAccess::Mosquitto(Arc::new(MosquittoKeeper::new(
                            files.clone(),
                            &user,
                            &Secret::new(password),
                        )))
                    }
                    None => BrokerAccess::Unmanaged,
                };
                (broker, addr, access)
            }
            None => {
                let directory =
                    Arc::new(Directory { store: store.clone(), service_password: service_password.clone() });
                let embedded = broker::start(settings.mqtt_listen, directory, shutdown.clone()).await?;
                let connect = broker::connect_addr(embedded.listen);
                let address = BrokerAddress {
                    host: connect.ip().to_string(),
                    port: connect.port(),
                    credentials: service_login(),
                };
                (address, connect, BrokerAccess::Embedded(embedded.connections))
            }
        };

        let hub = Arc::new(Hub::new());
        let writer_stop = CancellationToken::new();
        let (state_sender, writer_task) = state_writer::spawn(store.clone(), writer_stop.clone());
        // The link's client exists before the actors (they publish commands through it); it
        // connects and routes telemetry to them once they are running.
        let link = MqttLink::prepare(&broker);
        let (router, router_mailbox) = crate::actors::router::RouterHandle::channel();
        let fleet = Arc::new(Fleet::new(
            settings.actor_threads,
            MachineDeps {
                hub: hub.clone(),
                state_writer: state_sender.clone(),
                commands: link.publisher(),
                data_key: data_key.clone(),
                router: router.clone(),
            },
        ));

        let mut background = Vec::new();
        let card_key = settings.card_key()?;
        let demo = if settings.demo {
            Some(crate::demo::seed(&store, &card_key, &broker, shutdown.clone()).await?)
        } else {
            None
        };
        if let BrokerAccess::Mosquitto(keeper) = &broker_access {
            // Mosquitto's files follow the database from the start (and after a change made
            // while makrcave was down, or by another node).
            keeper.sync(&store).await?;
        }
        let demo_token = demo.as_ref().map(|_| {
            let space = [crate::demo::DEMO_SPACE.to_string()];
            let token =
                auth.mint(crate::demo::DEMO_ADMIN, &[Role::MakerspaceAdmin], &space, chrono::Duration::days(30));
            tracing::info!("demo mode: open the dashboard and press \"Use demo token\", or use this token: {token}");
            token
        });

        let machines = store.list_equipment(&Default::default()).await?;
        let mut states = store.load_states().await?;
        // The plugs' topics are known before the link connects and subscribes to them.
        let plug_routes = link.plug_routes();
        for machine in &machines {
            fleet.start(machine, states.remove(&machine.id));
            plug_routes.follow(&machine.id, &machine.makerspace_id, &machine.connection);
        }
        tracing::info!(machines = machines.len(), "machine actors started");

        // Events machines report (a lock at the bridge) run the same workflows as HTTP.
        let (event_sink, reported_events) = services::events::channel();
        let mqtt = link.start(fleet.clone(), event_sink, shutdown.clone());

        let services = Services {
            settings: settings.clone(),
            store,
            fleet,
            hub,
            journal: state_sender,
            mailer: Arc::new(crate::notify::email::Mailer::from_settings(&settings)?),
            card_key,
            broker_access,
            data_key,
            kiosk_guards: Arc::new(services::kiosk_guard::KioskGuards::new(settings.kiosk_guard)),
            plug_routes,
            files: crate::store::files::FileStore::open(&settings.files_location())?,
            router,
        };
        // The actors come up without their spools, which live in the store.
        let with_spools = services::spools::feed_fleet(&services).await?;
        tracing::info!(machines = with_spools, "loaded spools shown on their machines");
        background.push(services::events::spawn(services.clone(), reported_events, shutdown.clone()));
        // Releases no-shows, completes finished bookings and expires waitlist offers.
        background.push(services::sweeper::spawn(services.clone(), shutdown.clone()));
        // Sends queued jobs to capable, free, cleared machines, and follows what they report.
        background.push(crate::actors::router::spawn(services.clone(), router_mailbox, shutdown.clone()));
        let state = web::Data::new(AppState {
            services: Arc::new(services),
            auth,
            mqtt: mqtt.status(),
            metrics,
            demo_token,
            rate_limiter: crate::web::rate_limit::RateLimiter::new(settings.auth_rate_limit),
            ws_limits: crate::web::ws::limits::ConnectionLimits::new(
                settings.ws_max_per_identity,
                settings.ws_max_per_address,
                settings.ws_max_connections,
            ),
        });
        let listener = TcpListener::bind(settings.http).map_err(|e| StartError::Http(settings.http, e))?;
        let http_addr = listener.local_addr().map_err(|e| StartError::Http(settings.http, e))?;
        let server = {
            let state = state.clone();
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .wrap(middleware::DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
                    .wrap_fn(crate::web::latency_middleware)
                    .configure(crate::web::configure)
            })
            .workers(settings.http_workers)
            .shutdown_timeout(5)
            .listen(listener)
            .map_err(|e| StartError::Http(settings.http, e))?
            .run()
        };
        let handle = server.handle();
        let server_task = actix_web::rt::spawn(server);
        tracing::info!(http = %http_addr, mqtt = %mqtt_addr, "makrcave is up: dashboard at http://{http_addr}/");
        if let Some(demo) = demo {
            demo.announce(&settings.public_url);
            background.push(demo.simulators);
        }
        Ok(Application {
            http_addr,
            mqtt_addr,
            state,
            server: handle,
            server_task,
            mqtt,
            shutdown,
            writer_stop,
            writer_task,
            background,
        })
    }

    /// The bound HTTP address (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The MQTT broker address machines should connect to.
    pub fn mqtt_addr(&self) -> SocketAddr {
        self.mqtt_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs until the HTTP server stops (on SIGINT/SIGTERM), then shuts down in order.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Application { server_task, mqtt, shutdown, writer_stop, writer_task, background, state, .. } = self;
        let result = server_task.await.unwrap_or(Ok(()));
        shutdown.cancel();
        mqtt.join().await;
        for task in background {
            let _ = task.await;
        }
        // Actors first (their last transitions reach the writer), then the writer drains.
        let fleet = state.fleet.clone();
        let _ = tokio::task::spawn_blocking(move || fleet.shutdown()).await;
        writer_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), writer_task).await;
        state.store.close().await;
        tracing::info!("makrcave stopped");
        result
    }

    /// Stops gracefully (what a signal does), and waits until everything is down.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let _ = self.run_until_stopped().await;
    }
}
