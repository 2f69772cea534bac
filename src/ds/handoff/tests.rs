//! The handoff machines under simulated time: a happy path with the phase record, every
//! rollback path, and messages through `auth` sealing.

use super::*;
use crate::ds::conn_state::tests::drained;

fn t0() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sent(actions: &[DonorAction]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            DonorAction::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn acc_sent(actions: &[AcceptorAction]) -> Message {
    actions
        .iter()
        .find_map(|a| match a {
            AcceptorAction::Send(m) => Some(m.clone()),
            _ => None,
        })
        .expect("a message")
}

#[test]
fn happy_path_records_all_seven_phases_and_unlocks_only_at_done() {
    let now = t0();
    let timeouts = Timeouts::default();
    let (mut donor, a) = Donor::start(
        7,
        drained(),
        b"offset=500000".to_vec(),
        ms(1),
        timeouts,
        now,
    );
    let offer = sent(&a).remove(0);
    let (mut acc, app, a) = Acceptor::start(2, offer, timeouts).unwrap();
    assert_eq!(app, b"offset=500000");
    let AcceptorAction::Restore(state) = &a[0] else {
        panic!("{a:?}")
    };
    assert_eq!(state.peer, drained().peer);
    let accept = acc_sent(&acc.restored(Ok(Duration::from_micros(200)), now + ms(3)));
    assert_eq!(acc.poll_timeout(), Some(now + ms(3) + timeouts.commit));

    let a = donor.handle(&accept, now + ms(4));
    assert_eq!(sent(&a), vec![Message::Commit { id: 7 }]);
    assert!(
        !a.contains(&DonorAction::Unlock),
        "the route has not moved yet"
    );
    // 4 ms round trip minus 0.2 ms in the acceptor.
    assert_eq!(
        donor.phases().get(Phase::StateTransfer),
        PhaseTime::Took(3800)
    );

    assert_eq!(
        acc.handle(&Message::Commit { id: 7 }, now + ms(5)),
        vec![AcceptorAction::Redirect]
    );
    assert_eq!(acc.poll_timeout(), None, "no discarding once committed");
    let skipped = RedirectTimes {
        return_routability: PhaseTime::Skipped,
        bu_construction: PhaseTime::Skipped,
        binding_management: PhaseTime::Took(60),
    };
    assert_eq!(acc.redirected(skipped), vec![AcceptorAction::Activate]);
    let a = acc.activated(Duration::from_micros(30));
    let done = acc_sent(&a);
    assert!(a.contains(&AcceptorAction::Finished(Outcome::Completed)));

    let a = donor.handle(&done, now + ms(6));
    assert_eq!(
        a,
        vec![
            DonorAction::Unlock,
            DonorAction::Finished(Outcome::Completed)
        ]
    );
    let p = donor.phases();
    assert_eq!(p.get(Phase::SocketExtraction), PhaseTime::Took(1000));
    assert_eq!(p.get(Phase::SocketRecreation), PhaseTime::Took(200));
    assert_eq!(p.get(Phase::ReturnRoutability), PhaseTime::Skipped);
    assert_eq!(p.get(Phase::BuConstruction), PhaseTime::Skipped);
    assert_eq!(p.get(Phase::BindingManagement), PhaseTime::Took(60));
    assert_eq!(p.get(Phase::SocketActivation), PhaseTime::Took(30));
    assert!(donor.is_over());
    assert_eq!(donor.poll_timeout(), None);
}

#[test]
fn no_accept_in_time_rolls_back_with_the_donors_own_copy_and_aborts() {
    let now = t0();
    let timeouts = Timeouts::default();
    let mut state = drained();
    state.recv_queue = b"unread request".to_vec();
    let (mut donor, _) = Donor::start(1, state.clone(), vec![], ms(1), timeouts, now);
    assert_eq!(donor.poll_timeout(), Some(now + timeouts.accept));
    assert!(donor
        .handle_timeout(now + timeouts.accept - ms(1))
        .is_empty());
    let a = donor.handle_timeout(now + timeouts.accept);
    assert_eq!(sent(&a), vec![Message::Abort { id: 1 }]);
    let rb = a.iter().find_map(|x| match x {
        DonorAction::RollBack(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(rb.unwrap().recv_queue, state.recv_queue);
    assert!(a.contains(&DonorAction::Finished(Outcome::RolledBack(
        RollbackCause::AcceptTimeout
    ))));
    // The Accept arrives late: the donor repeats the Abort and does not commit.
    let a = donor.handle(
        &Message::Accept {
            id: 1,
            recreation_us: 5,
        },
        now + timeouts.accept + ms(1),
    );
    assert_eq!(sent(&a), vec![Message::Abort { id: 1 }]);
}

#[test]
fn reject_rolls_back_and_a_failed_restore_rejects_with_the_errno() {
    let now = t0();
    let timeouts = Timeouts::default();
    let (mut donor, a) = Donor::start(3, drained(), vec![], ms(1), timeouts, now);
    let (mut acc, _, _) = Acceptor::start(9, sent(&a).remove(0), timeouts).unwrap();
    let a = acc.restored(Err(98), now);
    let reject = acc_sent(&a);
    assert_eq!(
        reject,
        Message::Reject {
            id: 3,
            reason: RejectReason::RestoreFailed(98)
        }
    );
    let a = donor.handle(&reject, now + ms(1));
    assert!(matches!(a[0], DonorAction::RollBack(_)));
    assert_eq!(
        a[1],
        DonorAction::Finished(Outcome::RolledBack(RollbackCause::Rejected(
            RejectReason::RestoreFailed(98)
        )))
    );
}

#[test]
fn acceptor_discards_on_abort_or_without_commit_but_never_after_commit() {
    let now = t0();
    let timeouts = Timeouts::default();
    let offer = || Message::Offer {
        id: 5,
        state: Box::new(drained()),
        app: vec![],
    };
    let (mut acc, _, _) = Acceptor::start(1, offer(), timeouts).unwrap();
    acc.restored(Ok(ms(0)), now);
    assert_eq!(
        acc.handle(&Message::Abort { id: 5 }, now),
        vec![
            AcceptorAction::Discard,
            AcceptorAction::Finished(Outcome::Discarded)
        ]
    );
    let (mut acc, _, _) = Acceptor::start(1, offer(), timeouts).unwrap();
    acc.restored(Ok(ms(0)), now);
    assert!(acc.handle_timeout(now + timeouts.commit - ms(1)).is_empty());
    assert_eq!(
        acc.handle_timeout(now + timeouts.commit)[0],
        AcceptorAction::Discard
    );
    let (mut acc, _, _) = Acceptor::start(1, offer(), timeouts).unwrap();
    acc.restored(Ok(ms(0)), now);
    acc.handle(&Message::Commit { id: 5 }, now);
    assert!(acc.handle_timeout(now + timeouts.commit * 10).is_empty());
    assert!(acc.handle(&Message::Abort { id: 5 }, now).is_empty());
    // Another handoff's messages are not this one's.
    let (mut acc, _, _) = Acceptor::start(1, offer(), timeouts).unwrap();
    acc.restored(Ok(ms(0)), now);
    assert!(acc.handle(&Message::Commit { id: 6 }, now).is_empty());
}

#[test]
fn donor_reports_unconfirmed_and_unlocks_when_done_never_comes() {
    let now = t0();
    let timeouts = Timeouts::default();
    let (mut donor, _) = Donor::start(4, drained(), vec![], ms(1), timeouts, now);
    donor.handle(
        &Message::Accept {
            id: 4,
            recreation_us: 1,
        },
        now + ms(1),
    );
    assert!(donor
        .handle_timeout(now + ms(1) + timeouts.done - ms(1))
        .is_empty());
    assert_eq!(
        donor.handle_timeout(now + ms(1) + timeouts.done),
        vec![
            DonorAction::Unlock,
            DonorAction::Finished(Outcome::Unconfirmed)
        ]
    );
}

#[test]
fn the_acceptor_waits_for_commit_longer_than_the_donor_waits_for_accept() {
    let t = Timeouts::default();
    assert!(t.commit > t.accept + ms(500));
}

#[test]
fn every_message_seals_opens_and_decodes_to_itself() {
    let key = SharedKey::from_bytes(&[0x42; 32])
        .unwrap()
        .derive("handoff");
    let mut phases = Phases::default();
    phases.set(Phase::SocketActivation, PhaseTime::Took(12));
    phases.set(Phase::ReturnRoutability, PhaseTime::Skipped);
    let mut state = drained();
    state.send_queue = vec![1, 2, 3];
    let msgs = [
        Message::Prepare {
            id: 9,
            local: "[2001:db8::1]:8000".parse().unwrap(),
            peer: "[2001:db8::2]:40000".parse().unwrap(),
        },
        Message::Offer {
            id: 1,
            state: Box::new(state),
            app: b"app".to_vec(),
        },
        Message::Accept {
            id: 2,
            recreation_us: 77,
        },
        Message::Reject {
            id: 3,
            reason: RejectReason::Busy,
        },
        Message::Commit { id: 4 },
        Message::Abort { id: 5 },
        Message::Done { id: 6, phases },
    ];
    let mut replay = ReplayWindow::new();
    for (i, m) in msgs.iter().enumerate() {
        let frame = seal(&key, 11, 100 + i as u64, m);
        let (sender, back) = open(&key, &mut replay, &frame, &Limits::default()).unwrap();
        assert_eq!((sender, &back), (11, m));
        // The same frame again is a replay.
        assert!(matches!(
            open(&key, &mut replay, &frame, &Limits::default()),
            Err(MessageError::Auth(_))
        ));
        // Every truncated payload is an error, never a panic.
        let payload = m.payload();
        for n in 0..payload.len() {
            assert!(Message::decode(m.kind(), &payload[..n], &Limits::default()).is_err());
        }
    }
    let other = SharedKey::from_bytes(&[0x43; 32])
        .unwrap()
        .derive("handoff");
    let frame = seal(&other, 11, 999, &msgs[4]);
    assert!(matches!(
        open(&key, &mut replay, &frame, &Limits::default()),
        Err(MessageError::Auth(AuthError::BadTag))
    ));
}
