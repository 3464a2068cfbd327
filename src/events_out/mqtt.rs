//! The MQTT sink's connection (rumqttc): one task polls the connection, one publishes.
//!
//! Publishing is one QoS 1 message at a time: the next goes out when the broker acknowledged
//! the previous one (PUBACK), so events reach the broker in order and an event leaves the
//! on-disk queue only once the broker has it. After a reconnection (clean session: rumqttc
//! forgets what was in flight) the oldest unacknowledged event is sent again. Order of
//! work when connected: the connection's own messages (availability "online", discovery
//! configs), then the retained states that changed, then the queued events.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::EventsOutError;
use super::command::Commands;
use super::config::MqttConfig;
use super::discovery::{self, AVAILABILITY_TOPIC, COMMAND_TOPIC, OFFLINE, ONLINE};
use super::payload::DoorState;
use super::queue::Queue;

/// Topic of every event, relative to the prefix.
pub const EVENTS_TOPIC: &str = "events";
/// A message not acknowledged within this while connected is sent again.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection backoff.
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// The client options: broker, client id, keep-alive, clean session, last will ("offline",
/// retained), credentials and TLS.
pub fn options(
    config: &MqttConfig,
    password: Option<Zeroizing<String>>,
) -> Result<MqttOptions, EventsOutError> {
    let broker = config.broker().map_err(EventsOutError::Config)?;
    let mut o = MqttOptions::new(config.client_id(), broker.host, broker.port);
    o.set_keep_alive(Duration::from_secs(config.keep_alive_s));
    o.set_clean_session(true);
    o.set_last_will(LastWill::new(
        discovery::topic(config, AVAILABILITY_TOPIC),
        OFFLINE,
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(p) = password {
        o.set_credentials(config.username.clone(), p.as_str());
    }
    if broker.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls(config)?),
        )));
    }
    Ok(o)
}

fn tls(config: &MqttConfig) -> Result<rustls::ClientConfig, EventsOutError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let bad = |m: String| EventsOutError::Config(format!("mqtt TLS: {m}"));
    let mut roots = rustls::RootCertStore::empty();
    if config.ca_file.as_os_str().is_empty() {
        let found = rustls_native_certs::load_native_certs();
        for c in found.certs {
            let _ = roots.add(c);
        }
        if roots.is_empty() {
            return Err(bad(
                "no system certificate authorities found (install ca-certificates, or set \
                 mqtt.ca_file)"
                    .into(),
            ));
        }
    } else {
        let certs = CertificateDer::pem_file_iter(&config.ca_file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(format!("{}: {e}", config.ca_file.display())))?;
        for c in certs {
            roots
                .add(c)
                .map_err(|e| bad(format!("{}: {e}", config.ca_file.display())))?;
        }
        if roots.is_empty() {
            return Err(bad(format!(
                "{}: no certificate in it",
                config.ca_file.display()
            )));
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

/// What the polling task tells the publisher.
pub enum Net {
    Connected,
    Disconnected(String),
    /// A PUBLISH went out with this packet id.
    Sent(u16),
    Acked(u16),
    Message {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
}

/// Drive the connection: (re)connect with backoff, forward what matters. Ends once the client
/// disconnected, or the publisher is gone.
pub async fn poll(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Net>) {
    let mut backoff = RECONNECT_MIN;
    loop {
        let net = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = RECONNECT_MIN;
                Some(Net::Connected)
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => Some(Net::Acked(a.pkid)),
            Ok(Event::Incoming(Packet::Publish(p))) => Some(Net::Message {
                topic: p.topic,
                payload: p.payload.to_vec(),
                retain: p.retain,
            }),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(Net::Sent(pkid)),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => None,
            Err(e) => {
                if tx.send(Net::Disconnected(e.to_string())).is_err() {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
                None
            }
        };
        if let Some(net) = net
            && tx.send(net).is_err()
        {
            break;
        }
        if tx.is_closed() {
            break;
        }
    }
}

/// A message to publish (QoS 1).
struct Pub {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
    /// The queued event it delivers.
    seq: Option<u64>,
    /// The retained state it publishes (topic relative to the prefix, payload).
    state: Option<(&'static str, String)>,
}

struct InFlight {
    what: Pub,
    pkid: Option<u16>,
    since: Instant,
}

/// The state the records thread keeps current, and its wake-up.
pub struct Shared {
    pub state: Mutex<DoorState>,
    pub notify: Arc<Notify>,
}

pub struct Publisher {
    pub client: AsyncClient,
    pub config: MqttConfig,
    pub queue: Arc<Queue>,
    pub shared: Arc<Shared>,
    pub commands: Option<Commands>,
    /// Whether a door is behind this sink (`facegate run`); `facegate serve` has none, so it
    /// announces no Home Assistant entities (there is no lock or contact, and no door decision
    /// to show) and publishes only its availability and its events.
    pub has_door: bool,
    pub stop: CancellationToken,
}

impl Publisher {
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Net>) {
        let mut connected = false;
        let mut told = false;
        let mut outage_since: Option<Instant> = Some(Instant::now());
        let mut inflight: Option<InFlight> = None;
        let mut control: VecDeque<Pub> = VecDeque::new();
        let mut published: HashMap<&'static str, String> = HashMap::new();
        let command_topic = discovery::topic(&self.config, COMMAND_TOPIC);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let shared = Arc::clone(&self.shared);
        loop {
            tokio::select! {
                net = rx.recv() => match net {
                    None => return,
                    Some(Net::Connected) => {
                        connected = true;
                        told = false;
                        inflight = None;
                        published.clear();
                        let waited = outage_since.take().map(|t| t.elapsed());
                        tracing::info!(
                            queued = self.queue.len(),
                            after_s = waited.map(|d| d.as_secs_f64()),
                            "MQTT: connected to the broker"
                        );
                        control = self.on_connect();
                        if self.commands.is_some()
                            && let Err(e) = self.client.try_subscribe(&command_topic, QoS::AtLeastOnce)
                        {
                            tracing::error!(error = %e, "MQTT: cannot subscribe to the command topic");
                        }
                    }
                    Some(Net::Disconnected(e)) => {
                        // Said once per outage (a wrong password or an unreachable broker at
                        // start included); the reconnection is logged with the wait.
                        if !told {
                            tracing::warn!(
                                error = %e,
                                queued = self.queue.len(),
                                "MQTT: broker not reachable; events are queued on disk meanwhile"
                            );
                            told = true;
                        }
                        if connected {
                            outage_since = Some(Instant::now());
                        }
                        connected = false;
                        inflight = None;
                    }
                    Some(Net::Sent(pkid)) => {
                        if let Some(f) = inflight.as_mut() && f.pkid.is_none() {
                            f.pkid = Some(pkid);
                        }
                    }
                    Some(Net::Acked(pkid)) => {
                        if inflight.as_ref().is_some_and(|f| f.pkid == Some(pkid))
                            && let Some(done) = inflight.take()
                        {
                            self.delivered(done.what, &mut published);
                        }
                    }
                    Some(Net::Message { topic, payload, retain }) => {
                        if topic == command_topic && let Some(c) = self.commands.as_mut() {
                            c.handle(&payload, retain).await;
                        }
                    }
                },
                _ = shared.notify.notified() => {}
                _ = tick.tick() => {
                    if let Some(f) = &inflight && connected && f.since.elapsed() > ACK_TIMEOUT {
                        tracing::warn!(topic = %f.what.topic, "MQTT: no acknowledgement; sending again");
                        inflight = None;
                    }
                }
                _ = self.stop.cancelled() => {
                    self.goodbye(connected, &mut rx).await;
                    return;
                }
            }
            if connected && inflight.is_none() {
                let next = control
                    .pop_front()
                    .or_else(|| self.changed_state(&published))
                    .or_else(|| self.next_event());
                if let Some(p) = next {
                    match self.client.try_publish(
                        &p.topic,
                        QoS::AtLeastOnce,
                        p.retain,
                        p.payload.clone(),
                    ) {
                        Ok(()) => {
                            inflight = Some(InFlight {
                                what: p,
                                pkid: None,
                                since: Instant::now(),
                            })
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "MQTT: publish not accepted");
                            control.push_front(p);
                        }
                    }
                }
            }
        }
    }

    /// Availability "online" and the discovery configs, retained.
    fn on_connect(&self) -> VecDeque<Pub> {
        let retained = |topic: String, payload: Vec<u8>| Pub {
            topic,
            payload,
            retain: true,
            seq: None,
            state: None,
        };
        let mut v = VecDeque::new();
        v.push_back(retained(
            discovery::topic(&self.config, AVAILABILITY_TOPIC),
            ONLINE.into(),
        ));
        if self.config.discovery && self.has_door {
            for (topic, payload) in discovery::configs(&self.config) {
                v.push_back(retained(topic, payload.to_string().into_bytes()));
            }
        }
        v
    }

    fn changed_state(&self, published: &HashMap<&'static str, String>) -> Option<Pub> {
        let state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .topics();
        state
            .into_iter()
            .find(|(t, v)| published.get(t) != Some(v))
            .map(|(t, v)| Pub {
                topic: discovery::topic(&self.config, t),
                payload: v.clone().into_bytes(),
                retain: true,
                seq: None,
                state: Some((t, v)),
            })
    }

    fn next_event(&self) -> Option<Pub> {
        match self.queue.peek() {
            Ok(Some((seq, json))) => Some(Pub {
                topic: discovery::topic(&self.config, EVENTS_TOPIC),
                payload: json,
                retain: false,
                seq: Some(seq),
                state: None,
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "MQTT: event queue");
                None
            }
        }
    }

    fn delivered(&self, p: Pub, published: &mut HashMap<&'static str, String>) {
        if let Some(seq) = p.seq
            && let Err(e) = self.queue.ack(seq)
        {
            tracing::error!(error = %e, "MQTT: event queue");
        }
        if let Some((t, v)) = p.state {
            published.insert(t, v);
        }
    }

    /// At stop: availability "offline" (the broker would only send the last will after the
    /// keep-alive), then a clean disconnect.
    async fn goodbye(&self, connected: bool, rx: &mut mpsc::UnboundedReceiver<Net>) {
        if !connected {
            return;
        }
        let topic = discovery::topic(&self.config, AVAILABILITY_TOPIC);
        if self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, OFFLINE)
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                let mut sent = None;
                while let Some(net) = rx.recv().await {
                    match net {
                        Net::Sent(p) if sent.is_none() => sent = Some(p),
                        Net::Acked(p) if sent == Some(p) => break,
                        Net::Disconnected(_) => break,
                        _ => {}
                    }
                }
            })
            .await;
        }
        let _ = self.client.try_disconnect();
    }
}
