//! `kasa`: the headless register.
//!
//! Runs the demo, lists orders, sells an order, runs the sandbox on its own, stores secrets in
//! the OS keyring, checks the journal and (built with `--features simulate`) simulates whole store
//! days deterministically. Configuration comes from `--config` or `KASA_CONFIG`.
//!
//! One process writes a data directory. The commands that only look (`status`, `orders`,
//! `queue list`, `journal verify`, `slip`) open its database read-only and work beside a
//! running register; the ones that change something (`sale`, `refund`, `recover`,
//! `manager set-pin`, `queue retry`, `queue discard`) run a register themselves, and refuse,
//! saying what to do, while another one runs there.

#[cfg(feature = "simulate")]
mod simulate;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use kasa_core::{Money, PayMethod, SaleState};
use kasa_engine::inspect::{Inspect, Snapshot};
use kasa_engine::owner::Owner;
use kasa_engine::{Config, Credentials, Engine, KeyringCredentials, SaleView};

#[derive(Parser)]
#[command(name = "kasa", version, about = "Kasa register, headless")]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "KASA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory; overrides the configuration's `data_dir`.
    #[arg(long, global = true, env = "KASA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Use the sandbox's published demo credentials instead of the OS keyring (for a register
    /// pointed at `kasa sim`).
    #[arg(long, global = true)]
    sandbox_credentials: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the sandbox and sell orders headlessly against it.
    Demo {
        /// How many sales to make (card and cash in turn).
        #[arg(long, default_value_t = 2)]
        sales: usize,
    },
    /// List the pump orders the cloud has for this register.
    Orders,
    /// Show online/offline, the age of the order list and the queue depth.
    Status {
        /// Keep printing changes for this many seconds.
        #[arg(long, default_value_t = 0)]
        watch: u64,
    },
    /// Sell one pump order.
    Sale {
        /// The order id.
        #[arg(long)]
        order: String,
        /// How the customer pays.
        #[arg(long, value_enum)]
        pay: Pay,
        /// Cash handed over, e.g. 1500.00 (defaults to the exact total).
        #[arg(long)]
        tendered: Option<String>,
    },
    /// Start the register, let start-up recovery resolve unfinished sales, deliver the queue,
    /// and exit.
    Recover {
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Run the sandbox on its own and print its addresses.
    Sim {
        /// Write a configuration for a register using this sandbox to this file.
        #[arg(long)]
        write_config: Option<PathBuf>,
        /// Seconds between orders added by the simulated pump (0: none).
        #[arg(long, default_value_t = 20)]
        order_every: u64,
        /// Stop after this many seconds (0: run until interrupted).
        #[arg(long, default_value_t = 0)]
        seconds: u64,
    },
    /// Give back money of a paid sale through the method it was paid by; the manager PIN is read
    /// from standard input.
    Refund {
        /// The sale.
        #[arg(long)]
        sale: String,
        /// Which payment of the sale (0 for the first).
        #[arg(long, default_value_t = 0)]
        payment: u32,
        /// Amount, e.g. 25.50.
        #[arg(long)]
        amount: String,
        /// Why, for the journal and the refund slip.
        #[arg(long)]
        reason: String,
    },
    /// Write a paid sale's slip as a PDF.
    Slip {
        /// The sale.
        #[arg(long)]
        sale: String,
        /// Output file.
        #[arg(long)]
        pdf: PathBuf,
        /// A4 instead of an 80 mm roll.
        #[arg(long)]
        a4: bool,
    },
    /// Manage secrets in the OS keyring.
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Check the journal.
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Fiscalization through fiskaltrust: the middleware's journals and the daily closing.
    Fiscal {
        #[command(subcommand)]
        action: FiscalAction,
    },
    /// The manager's PIN.
    Manager {
        #[command(subcommand)]
        action: ManagerAction,
    },
    /// The outbox queue: what waits for delivery and what is parked.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Simulate whole store days deterministically (registers, sandbox and network on one
    /// thread and virtual time), with faults drawn from the seed; prints throughput, the faults
    /// injected and the promises checked. Built with `--features simulate`.
    #[cfg(feature = "simulate")]
    Simulate {
        /// One seed.
        #[arg(long, conflicts_with = "seeds")]
        seed: Option<u64>,
        /// A range of seeds, end excluded (1..201), run in parallel on --threads.
        #[arg(long)]
        seeds: Option<String>,
        /// Sales per store day.
        #[arg(long, default_value_t = 500)]
        sales: usize,
        /// Fault profile: calm, default or heavy.
        #[arg(long = "faults", default_value = "default")]
        faults: String,
        /// Registers in the store (two race for the same pump orders).
        #[arg(long, default_value_t = 2)]
        registers: usize,
        /// Threads for a sweep.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Reduce a failing run's fault schedule to a small one that still fails.
        #[arg(long)]
        shrink: bool,
        /// Switch on a planted bug (to watch the simulation find it).
        #[arg(long = "plant")]
        plant: Vec<String>,
        /// Write the whole trace of the (first failing, or only) run to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Seeds recorded as known open findings (docs/RELIABILITY.md): run apart, and each
        /// must still break a promise.
        #[arg(long, value_delimiter = ',')]
        known: Vec<u64>,
        /// Run every seed of a sweep past failures and list the failing ones.
        #[arg(long)]
        keep_going: bool,
    },
    /// Write the UI's TypeScript bindings to a file.
    Bindings {
        /// Output file.
        #[arg(default_value = "ui/src/bindings.ts")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Pay {
    Card,
    Cash,
    Mobilepay,
    Settle,
}

#[derive(Subcommand)]
enum SecretsAction {
    /// Store a secret; the value is read from standard input.
    Set {
        /// `tokenx.client_secret` or `finix.password`.
        name: String,
    },
}

#[derive(Subcommand)]
enum ManagerAction {
    /// Set the manager PIN (4 to 8 digits) read from standard input; to change it, give the
    /// current PIN on the first line and the new one on the second.
    SetPin,
}

#[derive(Subcommand)]
enum QueueAction {
    /// List pending and parked messages.
    List,
    /// Deliver a message now; a parked one goes back in line, with the manager PIN read from
    /// standard input.
    Retry {
        /// Message id.
        id: i64,
    },
    /// Discard a parked message; the manager PIN is read from standard input.
    Discard {
        /// Message id.
        id: i64,
        /// Why, for the journal.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum FiscalAction {
    /// Print entries of one of the middleware's journals as JSON lines (reads only the
    /// middleware; works beside a running register).
    Journal {
        /// ReceiptJournal, ActionJournal or QueueItem.
        #[arg(long = "type", default_value = "ReceiptJournal")]
        kind: String,
        /// Entries after this row.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        take: u32,
    },
    /// Sign the day's closing receipt at the middleware (after every receipt of the day); the
    /// manager PIN is read from standard input.
    CloseDay {
        /// The Z report's number, when there is one.
        #[arg(long)]
        z: Option<u64>,
    },
}

#[derive(Subcommand)]
enum JournalAction {
    /// Verify the keyed chain (with the journal key from the keyring); exits 1 at the first
    /// entry edited, deleted, inserted or reordered, naming it. Reads only.
    Verify,
    /// Export the journal entries written in a date range: CSV of the entries, or a PDF of
    /// the Z reports closed in it. Reads only, streaming; progress on stderr.
    Export {
        /// First day (2026-12-01) or moment (RFC 3339); the journal's start when absent.
        #[arg(long)]
        from: Option<String>,
        /// Last day (included) or moment (excluded); the journal's end when absent.
        #[arg(long)]
        to: Option<String>,
        /// `csv` (journal entries) or `pdf` (the Z reports).
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        /// File to write; standard output for CSV when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The X report (the shift so far; reads only), or a Z report closing the shift (runs the
    /// register; the manager PIN on standard input).
    Report {
        /// `x` or `z`.
        #[arg(value_enum)]
        kind: ReportArg,
        /// Z: the cash counted in the drawer, e.g. 1520.50.
        #[arg(long)]
        counted: Option<String>,
        /// Z: why the count differs from the cash expected (needed when it does).
        #[arg(long)]
        note: Option<String>,
        /// Z: cash left in the drawer for the next shift (default none).
        #[arg(long = "float")]
        next_float: Option<String>,
        /// Also write the report as a PDF here.
        #[arg(long)]
        pdf: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Pdf,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportArg {
    X,
    Z,
}

fn main() {
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    #[cfg(feature = "simulate")]
    if let Command::Simulate {
        seed,
        seeds,
        sales,
        faults,
        registers,
        threads,
        shrink,
        plant,
        trace,
        known,
        keep_going,
    } = &cli.command
    {
        // Each simulated store runs on a thread and runtime of its own. The registers' logs
        // only when asked for (RUST_LOG): a sweep logs millions of retries.
        if std::env::var_os("RUST_LOG").is_some() {
            kasa_engine::logging::init();
        }
        let args = (|| -> Result<simulate::Args> {
            let seeds = match (seed, seeds) {
                (Some(s), _) => *s..*s + 1,
                (None, Some(range)) => simulate::parse_seeds(range)?,
                (None, None) => 1..2,
            };
            Ok(simulate::Args {
                seeds,
                sales: *sales,
                registers: *registers,
                profile: simulate::parse_profile(faults)?,
                threads: *threads,
                shrink: *shrink,
                planted: plant.clone(),
                trace: trace.clone(),
                known: known.clone(),
                keep_going: *keep_going,
            })
        })();
        if let Err(e) = args.and_then(simulate::run) {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    kasa_engine::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let path = cli
        .config
        .as_ref()
        .context("no configuration: pass --config FILE or set KASA_CONFIG (see `kasa sim --write-config`)")?;
    let mut config = Config::load(path)?;
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    Ok(config)
}

fn credentials(cli: &Cli) -> Box<dyn Credentials> {
    if cli.sandbox_credentials { Box::new(Config::local_secrets()) } else { Box::new(KeyringCredentials) }
}

/// Runs a register on the data directory, for a command that changes something. While another
/// register runs there this refuses (one writer per data directory), naming what to do.
async fn start_engine(cli: &Cli) -> Result<Engine> {
    let config = load_config(cli)?;
    Ok(Engine::start(config, credentials(cli).as_ref()).await?)
}

/// Opens the data directory's database read-only, for a command that only looks.
fn inspect(cli: &Cli) -> Result<Inspect> {
    let config = load_config(cli)?;
    Ok(Inspect::open(&config)?)
}

/// The first line of a read-only command: whose data is shown.
fn owner_line(owner: &Owner) -> String {
    match owner {
        Owner::Running { pid: Some(pid) } => format!("register running (process {pid}); its data, read-only"),
        Owner::Running { pid: None } => "register running; its data, read-only".to_string(),
        Owner::Free => "no register is running on this data directory; its data as last written".to_string(),
    }
}

fn snapshot_line(s: &Snapshot) -> String {
    let age = match s.orders_listed_at {
        Some(at) => format!("orders listed {} s ago", (time::OffsetDateTime::now_utc() - at).whole_seconds().max(0)),
        None => "orders never listed".to_string(),
    };
    let mut line = format!("{age}  queue {} pending, {} parked", s.queue.pending, s.queue.parked);
    if !s.under_way.is_empty() {
        let sales: Vec<String> = s.under_way.iter().map(|(id, st)| format!("{} {}", short(id), st.as_str())).collect();
        line.push_str(&format!("  under way: {}", sales.join(", ")));
    }
    if !s.attention.is_empty() {
        let sales: Vec<&str> = s.attention.iter().map(|id| short(id)).collect();
        line.push_str(&format!("  NEEDS A MANAGER: {}", sales.join(", ")));
    }
    line
}

fn short(id: &str) -> &str {
    &id[id.len().saturating_sub(8)..]
}

fn default_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kasa-demo-{}", std::process::id()))
}

async fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Demo { sales } => demo(cli.data_dir.clone().unwrap_or_else(default_data_dir), *sales).await,
        Command::Orders => {
            let config = load_config(&cli)?;
            let (orders, source) = match kasa_engine::owner::owner(&config.data_dir) {
                // The register keeps the list fresh: read its copy rather than ask the cloud.
                owner @ Owner::Running { .. } => {
                    let look = Inspect::open(&config)?;
                    let age = look
                        .snapshot()?
                        .orders_listed_at
                        .map(|at| {
                            format!(", listed {} s ago", (time::OffsetDateTime::now_utc() - at).whole_seconds().max(0))
                        })
                        .unwrap_or_default();
                    (look.orders()?, format!("{}{age}", owner_line(&owner)))
                }
                Owner::Free => (
                    kasa_engine::inspect::cloud_orders(&config, credentials(&cli).as_ref()).await?,
                    "from the cloud".to_string(),
                ),
            };
            println!("{source}");
            println!("{:<12} {:<14} {:>4}  {:<22} {:>14}  STATUS", "ORDER", "PLATE", "PUMP", "PRODUCT", "AMOUNT");
            for o in orders {
                println!(
                    "{:<12} {:<14} {:>4}  {:<22} {:>14}  {:?}",
                    o.order_id,
                    o.plate_number,
                    o.pump_no,
                    o.product_name,
                    o.amount.display_grouped(),
                    o.status
                );
            }
            Ok(())
        }
        Command::Sale { order, pay, tendered } => {
            let engine = start_engine(&cli).await?;
            let result = sell(&engine, order, *pay, tendered.as_deref()).await;
            engine.shutdown().await;
            let view = result?;
            print_sale(&view);
            if view.state.is_paid() { Ok(()) } else { bail!("the sale was not paid") }
        }
        Command::Status { watch } => {
            let look = inspect(&cli)?;
            let until = std::time::Instant::now() + Duration::from_secs(*watch);
            let mut last = String::new();
            loop {
                let snapshot = look.snapshot()?;
                let line = format!("{}\n{}", owner_line(&snapshot.owner), snapshot_line(&snapshot));
                if line != last {
                    println!("{line}");
                    last = line;
                }
                if std::time::Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(())
        }
        Command::Refund { sale, payment, amount, reason } => {
            let pin = read_stdin()?;
            let engine = start_engine(&cli).await?;
            let result = async {
                let currency = engine.config().currency()?;
                let amount = Money::parse_decimal(amount, currency)?;
                let session = engine.manager_login(pin.trim()).await?;
                let view = engine.refund(sale, *payment, amount, &session.token, reason).await?;
                engine.drain(Duration::from_secs(60)).await?;
                Ok::<_, anyhow::Error>(engine.sale_view(&view.id).await?)
            }
            .await;
            engine.shutdown().await;
            let view = result?;
            for r in &view.refunds {
                println!("refund {} of payment {}: {} ({:?})", r.id, r.payment, r.amount.display_grouped(), r.state);
            }
            Ok(())
        }
        Command::Slip { sale, pdf, a4 } => {
            let look = inspect(&cli)?;
            let paper = if *a4 { kasa_print::pdf::Paper::A4 } else { kasa_print::pdf::Paper::Roll80 };
            let bytes = look.slip_pdf(sale, paper, true)?;
            std::fs::write(pdf, bytes).with_context(|| format!("writing {}", pdf.display()))?;
            println!("wrote {}", pdf.display());
            Ok(())
        }
        Command::Recover { timeout } => {
            let engine = start_engine(&cli).await?;
            let status = engine.status();
            if status.recovery.is_empty() {
                println!("nothing to recover");
            }
            for line in &status.recovery {
                println!("recovered: {line}");
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(*timeout);
            loop {
                let busy = engine.store().sales_in(&[SaleState::Locking, SaleState::Paying])?;
                let counts = engine.drain(Duration::from_millis(200)).await?;
                if busy.is_empty() && counts.pending == 0 {
                    println!("queue delivered ({} parked)", counts.parked);
                    break;
                }
                if std::time::Instant::now() > deadline {
                    engine.shutdown().await;
                    bail!(
                        "still {} busy sale(s) and {} queued operation(s) after {timeout} s",
                        busy.len(),
                        counts.pending
                    );
                }
            }
            engine.shutdown().await;
            Ok(())
        }
        Command::Sim { write_config, order_every, seconds } => sim(write_config.clone(), *order_every, *seconds).await,
        Command::Secrets { action: SecretsAction::Set { name } } => {
            let value = read_stdin()?;
            let value = value.trim_end_matches(['\r', '\n']);
            if value.is_empty() {
                bail!("the secret read from standard input is empty");
            }
            KeyringCredentials.set(name, value)?;
            println!("stored {name} in the OS keyring");
            Ok(())
        }
        Command::Fiscal { action: FiscalAction::Journal { kind, from, take } } => {
            let config = load_config(&cli)?;
            let entries =
                kasa_engine::providers::fiscal::read_journal(&config, credentials(&cli).as_ref(), kind, *from, *take)
                    .await?;
            for e in &entries {
                println!("{e}");
            }
            eprintln!("{} entries of the {kind}", entries.len());
            Ok(())
        }
        Command::Fiscal { action: FiscalAction::CloseDay { z } } => {
            let pin = read_stdin()?;
            let engine = start_engine(&cli).await?;
            let result = async {
                let session = engine.manager_login(pin.trim()).await?;
                let reference = engine.fiscal_daily_closing(&session.token, *z).await?;
                let left = engine.drain(Duration::from_secs(60)).await?;
                Ok::<_, anyhow::Error>((reference, left))
            }
            .await;
            engine.shutdown().await;
            let (reference, left) = result?;
            if left.pending == 0 && left.parked == 0 {
                println!("daily closing {reference} signed");
            } else {
                println!(
                    "daily closing {reference} queued; {} receipt(s) still wait for the middleware, {} parked (see `kasa queue list`)",
                    left.pending, left.parked
                );
            }
            Ok(())
        }
        Command::Manager { action: ManagerAction::SetPin } => {
            let input = read_stdin()?;
            let lines: Vec<&str> = input.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let engine = start_engine(&cli).await?;
            let result = match lines.as_slice() {
                [new] => engine.set_first_manager_pin(new).await,
                [current, new] => engine.change_manager_pin(current, new).await,
                _ => {
                    engine.shutdown().await;
                    bail!("give the new PIN on standard input (or the current PIN, then the new one, on two lines)");
                }
            };
            engine.shutdown().await;
            result?;
            println!("manager PIN set");
            Ok(())
        }
        Command::Queue { action: QueueAction::List } => {
            let look = inspect(&cli)?;
            println!("{}", owner_line(look.owner()));
            let items = look.queue(1000)?;
            if items.is_empty() {
                println!("the queue is empty");
            }
            for i in items {
                println!(
                    "{:>6}  {:<8} {:<15} {:>3} tries  {}  {}",
                    i.id,
                    i.state,
                    i.kind,
                    i.attempts,
                    i.lane,
                    i.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Queue { action: QueueAction::Retry { id } } => {
            let engine = start_engine(&cli).await?;
            let result = async {
                match engine.retry_now(*id, None).await {
                    // A parked message: the manager's PIN, from standard input.
                    Err(e) if e.code == kasa_engine::ErrorCode::NotAuthorized => {
                        let session = engine.manager_login(read_stdin()?.trim()).await?;
                        Ok::<_, anyhow::Error>(engine.retry_now(*id, Some(&session.token)).await?)
                    }
                    other => Ok(other?),
                }
            }
            .await;
            engine.shutdown().await;
            result?;
            println!("message {id} is due now");
            Ok(())
        }
        Command::Queue { action: QueueAction::Discard { id, reason } } => {
            let pin = read_stdin()?;
            let engine = start_engine(&cli).await?;
            let result = async {
                let session = engine.manager_login(pin.trim()).await?;
                engine.discard(*id, &session.token, reason).await
            }
            .await;
            engine.shutdown().await;
            result?;
            println!("message {id} discarded (journaled)");
            Ok(())
        }
        Command::Journal { action: JournalAction::Verify } => {
            let look = inspect(&cli)?;
            let v = look.verify_journal(credentials(&cli).as_ref())?;
            match &v.first_break {
                None => {
                    println!("journal intact: {} entries", v.entries);
                    Ok(())
                }
                Some(b) => bail!(
                    "journal broken at entry {} ({}): {} ({} entries read)",
                    b.seq,
                    serde_json::to_value(b.kind).ok().and_then(|k| k.as_str().map(str::to_owned)).unwrap_or_default(),
                    b.reason,
                    v.entries
                ),
            }
        }
        Command::Journal { action: JournalAction::Export { from, to, format, out } } => {
            let look = inspect(&cli)?;
            let store = look.store();
            let bound = |t: &Option<String>, end| {
                t.as_deref().map(|t| kasa_core::search::parse_bound(t, end)).transpose().map_err(anyhow::Error::msg)
            };
            let (from_ms, to_ms) = (bound(from, false)?, bound(to, true)?);
            match format {
                ExportFormat::Csv => {
                    let first = from_ms.map(|ms| store.journal_seq_at(ms)).transpose()?.unwrap_or(1);
                    let end = match to_ms {
                        Some(ms) => store.journal_seq_at(ms)?,
                        None => store.journal_end()?,
                    };
                    let mut out: Box<dyn std::io::Write> = match out {
                        Some(p) => Box::new(std::io::BufWriter::with_capacity(
                            1 << 16,
                            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                        )),
                        None => Box::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())),
                    };
                    let mut progress = |done: u64, total: u64| eprint!("\rexported {done} of {total} entries");
                    let n = store.export_journal_csv(first, end, &mut out, &mut progress)?;
                    eprintln!("\rexported {n} entries{}", " ".repeat(20));
                }
                ExportFormat::Pdf => {
                    let out = out.as_ref().context("a PDF export needs --out FILE")?;
                    let mut lines = Vec::new();
                    for n in store.z_numbers()? {
                        let Some(z) = store.z_report(n)? else { continue };
                        let at = kasa_core::search::parse_bound(&z.at, false).unwrap_or(0);
                        if from_ms.is_some_and(|f| at < f) || to_ms.is_some_and(|t| at >= t) {
                            continue;
                        }
                        lines.extend(z.lines());
                        lines.push((String::new(), String::new()));
                    }
                    if lines.is_empty() {
                        bail!("no Z report was closed in that range");
                    }
                    let blocks = kasa_print::layout::report_blocks(&lines, kasa_print::Width::Mm80);
                    let pdf = kasa_print::pdf::render_pdf(&blocks, kasa_print::pdf::Paper::A4)?;
                    std::fs::write(out, pdf).with_context(|| format!("writing {}", out.display()))?;
                    eprintln!("wrote {}", out.display());
                }
            }
            Ok(())
        }
        Command::Journal { action: JournalAction::Report { kind, counted, note, next_float, pdf } } => {
            let report = match kind {
                ReportArg::X => {
                    let look = inspect(&cli)?;
                    println!("{}", owner_line(look.owner()));
                    kasa_engine::reports::x_report_of(look.store(), look.config(), time::OffsetDateTime::now_utc())?
                }
                ReportArg::Z => {
                    let counted =
                        counted.as_deref().context("a Z report needs --counted AMOUNT (the cash in the drawer)")?;
                    let pin = read_stdin()?;
                    let engine = start_engine(&cli).await?;
                    let result = async {
                        let currency = engine.config().currency()?;
                        let counted = Money::parse_decimal(counted, currency)?;
                        let next = match next_float {
                            Some(f) => Money::parse_decimal(f, currency)?,
                            None => Money::new(0, currency),
                        };
                        let session = engine.manager_login(pin.trim()).await?;
                        let z = engine.z_report(&session.token, counted, note.clone(), next).await?;
                        engine.drain(Duration::from_secs(30)).await?;
                        Ok::<_, anyhow::Error>(z)
                    }
                    .await;
                    engine.shutdown().await;
                    result?
                }
            };
            let blocks = kasa_print::layout::report_blocks(&report.lines(), kasa_print::Width::Mm80);
            print!("{}", kasa_print::layout::to_text(&blocks));
            if let Some(path) = pdf {
                let bytes = kasa_print::pdf::render_pdf(&blocks, kasa_print::pdf::Paper::A4)?;
                std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Bindings { out } => {
            std::fs::write(out, kasa_engine::dto::typescript_bindings())
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        #[cfg(feature = "simulate")]
        Command::Simulate { .. } => bail!("`kasa simulate` runs before the runtime starts, on threads of its own"),
    }
}

fn read_stdin() -> Result<String> {
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value).context("reading standard input")?;
    Ok(value)
}

async fn wait_for_orders(engine: &Engine) -> Result<Vec<kasa_core::OrderSummary>> {
    for _ in 0..100 {
        // Online is first set by a listing; until then the cache may be from an earlier run.
        let status = engine.status();
        if status.online {
            return Ok(engine.orders().await?);
        }
        if let Some(reason) = status.offline_reason {
            bail!("offline: {reason}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the order list did not arrive within 5 s")
}

async fn sell(engine: &Engine, order: &str, pay: Pay, tendered: Option<&str>) -> Result<SaleView> {
    let sale = engine.open_order_sale(order).await?;
    let method = match pay {
        Pay::Card => PayMethod::Card,
        Pay::Mobilepay => PayMethod::MobilePay,
        Pay::Settle => PayMethod::Settle,
        Pay::Cash => PayMethod::Cash {
            tendered: match tendered {
                Some(t) => Money::parse_decimal(t, sale.total.currency)?,
                None => sale.total,
            },
        },
    };
    engine.pay(&sale.id, method).await?;
    let view = engine.wait_settled(&sale.id, Duration::from_secs(240)).await?;
    if view.state.is_paid() {
        // Deliver the payment report and the slip before exiting.
        engine.drain(Duration::from_secs(30)).await?;
        if let Ok(done) = engine.wait_for_state(&sale.id, SaleState::Completed, Duration::from_secs(10)).await {
            return Ok(engine.sale_view(&done.id.0).await?);
        }
    }
    Ok(engine.sale_view(&sale.id).await?)
}

fn print_sale(view: &SaleView) {
    println!("sale {}: {:?}, total {}", view.id, view.state, view.total.display_grouped());
    if let Some(n) = &view.notice {
        println!("{}", n.message);
    }
    if let Some(change) = view.change {
        println!("change: {}", change.display_grouped());
    }
    if let Some(r) = &view.receipt {
        println!("pump receipt: fiscal no {}, Z no {}, EKÜ no {}", r.fiscal_no, r.z_no, r.eku_no);
    }
    if let Some(slip) = &view.slip_text {
        println!("\n{slip}");
    }
}

async fn demo(data_dir: PathBuf, sales: usize) -> Result<()> {
    let demo = kasa_engine::demo::start(data_dir.clone(), kasa_sim::SandboxConfig::demo()).await?;
    println!(
        "Kasa demo: sandbox Token X {} Finix {} printer {}",
        demo.sandbox.tokenx_url(),
        demo.sandbox.finix_url(),
        demo.sandbox.printer_addr()
    );
    println!("data directory: {}", data_dir.display());
    let mut failures = 0;
    for i in 0..sales {
        let orders = wait_for_orders(&demo.engine).await?;
        let Some(order) = orders.iter().find(|o| o.status.is_payable()) else {
            demo.sandbox.tokenx.add_random_order();
            demo.engine.refresh_orders();
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let pay = if i % 2 == 0 { Pay::Card } else { Pay::Cash };
        println!(
            "\n== selling {} ({}, pump {}) by {} ==",
            order.order_id,
            order.plate_number,
            order.pump_no,
            if i % 2 == 0 { "card" } else { "cash" }
        );
        let view = sell(&demo.engine, &order.order_id, pay, None).await?;
        if !view.state.is_paid() {
            failures += 1;
        }
        print_sale(&view);
    }
    let jobs = demo.sandbox.printer.jobs();
    println!("virtual printer received {} slip(s)", jobs.len());
    // Each slip's signature QR code, read back from the printed bytes, is the one the middleware
    // gave for its receipt.
    let manager = demo.engine.manager_login(kasa_engine::demo::DEMO_PIN).await?;
    let signatures: Vec<String> = demo
        .engine
        .recent_sales(&manager.token, 1000)
        .await?
        .into_iter()
        .flat_map(|s| s.fiscal)
        .filter_map(|r| r.signature.and_then(|s| s.qr))
        .collect();
    let read_back = jobs
        .iter()
        .filter(|j| {
            kasa_print::decode::blocks(&j.bytes, kasa_print::Model::EPSON_TM).iter().any(|b| match b {
                kasa_print::layout::Block::Qr(data) => signatures.contains(data),
                _ => false,
            })
        })
        .count();
    println!("fiscal signature QR codes read back from the slips: {read_back} of {}", jobs.len());
    let v = demo.engine.verify_journal().await?;
    println!("journal: {} entries, {}", v.entries, if v.is_intact() { "intact" } else { "BROKEN" });
    demo.engine.shutdown().await;
    if failures > 0 {
        bail!("{failures} demo sale(s) were not paid");
    }
    Ok(())
}

async fn sim(write_config: Option<PathBuf>, order_every: u64, seconds: u64) -> Result<()> {
    let mut cfg = kasa_sim::SandboxConfig::demo();
    cfg.tokenx.order_interval = (order_every > 0).then(|| Duration::from_secs(order_every));
    let sb = kasa_sim::Sandbox::start(cfg).await?;
    println!("Token X   {}", sb.tokenx_url());
    println!("Finix     {}", sb.finix_url());
    println!("printer   {}", sb.printer_addr());
    println!("fiskaltrust {}", sb.fiskaltrust_url());
    println!("Token X client kasa-demo / demo-secret, terminals VT-0001 and VT-0002");
    println!("Finix user USdemoKasa / demo-finix-password, merchant MUdemoKasaMerchant, device DVdemoKasaTerminal1");
    println!(
        "fiskaltrust CashBox {} / {} (fiskaltrust.access_token), receipts coded for {}",
        sb.config.fiskaltrust.cashbox_id, sb.config.fiskaltrust.access_token, sb.config.fiskaltrust.country
    );
    if let Some(path) = write_config {
        let dir = path.parent().map(|p| p.join("kasa-data")).unwrap_or_else(|| PathBuf::from("kasa-data"));
        let fiskaltrust = sb.fiskaltrust_url();
        let config = Config::local(dir, &sb.tokenx_url(), &sb.finix_url(), Some(sb.printer_addr()))
            .with_local_systems(|name| (name == "fiskaltrust").then(|| fiskaltrust.clone()));
        std::fs::write(&path, toml::to_string(&config)?).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {} (set the secrets with `kasa secrets set`)", path.display());
    }
    if seconds > 0 {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    } else {
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}
