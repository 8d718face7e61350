//! The manager PIN against guessing: counted in the database before it is checked, locked out
//! for longer each time, through restarts and in parallel; sessions end when idle.

use std::time::Duration;

use kasa_engine::{Clock, Config, Credentials, Engine, Env, ErrorCode};
use kasa_sim::{Sandbox, SandboxConfig};

use super::MANAGER_PIN;

async fn start(sandbox: &Sandbox, dir: &std::path::Path, clock: &Clock) -> Engine {
    let config = Config::local(dir.to_path_buf(), &sandbox.tokenx_url(), &sandbox.finix_url(), None)
        .with_local_systems(|name| sandbox.url(name));
    Engine::start_in(config, &Config::local_secrets(), Env::system().with_clock(clock.clone())).await.expect("engine")
}

/// What one guess got back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    /// The PIN was checked and found wrong: the guesser learnt something.
    answered: u32,
    /// Refused unchecked: the area was locked.
    locked: u32,
}

async fn guess(engine: &Engine, pin: &str, t: &mut Tally) {
    let e = engine.manager_login(pin).await.expect_err("every guess is wrong");
    assert_eq!(e.code, ErrorCode::Refused, "{e:?}");
    if e.message.starts_with("Wrong PIN.") {
        t.answered += 1;
    } else {
        assert!(e.message.starts_with("Too many wrong PINs"), "{}", e.message);
        t.locked += 1;
    }
}

fn wrong_pin(i: u32) -> String {
    let p = format!("{:06}", (i * 7919 + 13) % 1_000_000);
    if p == MANAGER_PIN { "000001".into() } else { p }
}

#[tokio::test]
async fn ten_thousand_guesses_through_restarts_get_a_handful_of_answers() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::shifted();
    let engine = start(&sandbox, dir.path(), &clock).await;
    let e = engine.manager_login(MANAGER_PIN).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Setup, "no PIN is set yet: {}", e.message);
    engine.set_first_manager_pin(MANAGER_PIN).await.unwrap();
    engine.shutdown().await;

    // Ten restarts, a thousand guesses after each, ten minutes between: lockouts of 1, 2, 4, 8
    // minutes pass between restarts; from the fifth (16 min) on, they outlast the pause.
    let mut t = Tally::default();
    let mut per_round = Vec::new();
    for round in 0..10u32 {
        if round > 0 {
            clock.advance(Duration::from_secs(600));
        }
        let engine = start(&sandbox, dir.path(), &clock).await;
        let before = t;
        for i in 0..1000 {
            guess(&engine, &wrong_pin(round * 1000 + i), &mut t).await;
        }
        per_round.push(t.answered - before.answered);
        engine.shutdown().await;
    }
    assert_eq!(t.answered + t.locked, 10_000);
    // Answers: 5 after each of the first five restarts (the lockout before it had passed), then
    // 5 more once the 16-minute one is over, then none while the 32- and 60-minute ones last.
    assert_eq!(per_round, [5, 5, 5, 5, 5, 0, 5, 0, 0, 0], "answers per restart");
    assert_eq!(t.answered, 30, "of 10,000 guesses, 30 were checked");

    // Even the right PIN waits for the lockout to pass, and then opens the area.
    let engine = start(&sandbox, dir.path(), &clock).await;
    let e = engine.manager_login(MANAGER_PIN).await.unwrap_err();
    assert!(e.message.starts_with("Too many wrong PINs"), "{}", e.message);
    clock.advance(Duration::from_secs(3600));
    let session = engine.manager_login(MANAGER_PIN).await.unwrap();
    assert_eq!(session.idle_logout_secs, 300);

    // Every answered guess and every refused one is in the journal.
    let entries = engine.store().journal_page(0, 100_000).unwrap();
    let count = |kind: &str| entries.iter().filter(|e| e.kind == kind).count() as u32;
    assert_eq!(count("manager_pin_wrong"), t.answered);
    assert_eq!(count("manager_pin_refused"), t.locked + 1);
    assert_eq!(count("manager_locked"), 6);
    assert_eq!(count("manager_login"), 1);
    assert!(engine.verify_journal().await.unwrap().is_intact());
    engine.shutdown().await;
}

#[tokio::test]
async fn guesses_sent_at_once_are_each_counted_before_any_is_checked() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::shifted();
    let engine = start(&sandbox, dir.path(), &clock).await;
    engine.set_first_manager_pin(MANAGER_PIN).await.unwrap();
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..50 {
        let engine = engine.clone();
        tries.spawn(async move { engine.manager_login(&wrong_pin(i)).await.unwrap_err() });
    }
    let answers = tries.join_all().await;
    let checked = answers.iter().filter(|e| e.message.starts_with("Wrong PIN.")).count();
    assert!(checked <= 5, "{checked} of 50 parallel guesses were checked");
    assert!(engine.manager_login(MANAGER_PIN).await.is_err(), "locked now, the right PIN too");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_session_ends_after_the_idle_time_and_is_checked_on_every_privileged_call() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::shifted();
    let engine = start(&sandbox, dir.path(), &clock).await;
    engine.set_first_manager_pin(MANAGER_PIN).await.unwrap();
    let s = engine.manager_login(MANAGER_PIN).await.unwrap().token;
    engine.queue(&s, 10).await.unwrap();
    // Used within the idle time, it stays open.
    clock.advance(Duration::from_secs(200));
    engine.recent_sales(&s, 10).await.unwrap();
    clock.advance(Duration::from_secs(200));
    engine.queue(&s, 10).await.unwrap();
    // Idle for longer: ended, and journaled as such.
    clock.advance(Duration::from_secs(301));
    assert_eq!(engine.queue(&s, 10).await.unwrap_err().code, ErrorCode::NotAuthorized);
    assert_eq!(engine.recent_sales(&s, 10).await.unwrap_err().code, ErrorCode::NotAuthorized);
    for call in ["queue", "recent", "discard", "retry"] {
        let e = match call {
            "queue" => engine.queue("made-up", 10).await.map(|_| ()),
            "recent" => engine.recent_sales("made-up", 10).await.map(|_| ()),
            "discard" => engine.discard(1, "made-up", "a reason").await,
            _ => engine.retry_now(1, Some("made-up")).await,
        };
        assert_eq!(e.unwrap_err().code, ErrorCode::NotAuthorized, "{call}");
    }
    let entries = engine.store().journal_page(0, 1000).unwrap();
    assert!(entries.iter().any(|e| e.kind == "manager_logout" && e.data.contains("idle")));
    // A restart ends every session.
    let s = engine.manager_login(MANAGER_PIN).await.unwrap().token;
    engine.shutdown().await;
    let engine = start(&sandbox, dir.path(), &clock).await;
    assert_eq!(engine.queue(&s, 10).await.unwrap_err().code, ErrorCode::NotAuthorized);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_journal_sealed_with_a_key_the_keyring_lost_is_refused_and_another_key_shows_it_broken() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::shifted();
    let engine = start(&sandbox, dir.path(), &clock).await;
    engine.set_first_manager_pin(MANAGER_PIN).await.unwrap();
    engine.shutdown().await;
    drop(engine);

    let config = Config::local(dir.path().to_path_buf(), &sandbox.tokenx_url(), &sandbox.finix_url(), None)
        .with_local_systems(|name| sandbox.url(name));
    let lost = Config::local_secrets().without("journal.key");
    let e = Engine::start(config.clone(), &lost).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Setup);
    assert!(e.message.contains("restore the register's `journal.key`"), "{}", e.message);
    assert!(lost.get("journal.key").is_err(), "no new key was made over the old journal");

    // Another key (a wrong restore): the register starts, and says the journal is broken.
    let wrong = Config::local_secrets();
    Credentials::set(&wrong, "journal.key", &"ab".repeat(32)).unwrap();
    let engine = Engine::start(config, &wrong).await.unwrap();
    let problem = engine.status().journal_problem.expect("shown in the status bar");
    assert!(problem.contains("entry 1"), "{problem}");
    engine.shutdown().await;
}
