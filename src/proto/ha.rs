pub struct Ha; impl Ha { pub fn handle(&mut self, _e: crate::proto::event::Event<'_>, _now: std::time::Instant) {} pub fn poll_action(&mut self) -> Option<crate::proto::event::Action> { None } }
