//! The receive planning every embedded queue walks by (memory, SQLite): SQS FIFO's receive shape.
//!
//! Groups are offered in the order of their oldest message, each with its messages oldest first.
//! A group delivers its visible messages up to the first one in flight or delayed (the rest of
//! the group waits behind that one), so one contact's waiting events arrive in one batch and are
//! planned once; a group whose oldest message is invisible delivers nothing. Exhausted messages
//! met on the way go to the dead letters without counting towards `max`; the walk stops right
//! after the `max`-th delivery. Adapters differ only in how they read the messages.

/// What the walker does next after offering one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Offer the group's next message.
    NextMessage,
    /// The rest of this group waits: go on with the next group.
    NextGroup,
    /// The receive is full: stop walking.
    Stop,
}

/// Deliveries in delivery order and the exhausted messages met on the way, as the adapter's
/// own message handles `T`.
#[derive(Debug)]
pub struct ReceivePlan<T> {
    pub deliver: Vec<T>,
    pub dead: Vec<T>,
    max: usize,
    max_receive_count: u32,
}

impl<T> ReceivePlan<T> {
    pub fn new(max: usize, max_receive_count: u32) -> Self {
        Self { deliver: Vec::new(), dead: Vec::new(), max, max_receive_count }
    }

    /// Nothing more can be delivered.
    pub fn is_full(&self) -> bool {
        self.deliver.len() >= self.max
    }

    /// Offers the next message of the group being walked, oldest first. `visible`: not in flight
    /// and not delayed; `receive_count`: receives so far.
    pub fn offer(&mut self, message: T, visible: bool, receive_count: u32) -> Walk {
        if !visible {
            return Walk::NextGroup;
        }
        if self.is_full() {
            return Walk::Stop;
        }
        if receive_count >= self.max_receive_count {
            self.dead.push(message);
        } else {
            self.deliver.push(message);
        }
        Walk::NextMessage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks groups of (name, visible, receive_count) the way the adapters do.
    fn walk(groups: &[&[(&'static str, bool, u32)]], max: usize) -> (Vec<&'static str>, Vec<&'static str>) {
        let mut plan = ReceivePlan::new(max, 3);
        'groups: for group in groups {
            for &(name, visible, count) in *group {
                match plan.offer(name, visible, count) {
                    Walk::NextMessage => {}
                    Walk::NextGroup => continue 'groups,
                    Walk::Stop => break 'groups,
                }
            }
        }
        (plan.deliver, plan.dead)
    }

    #[test]
    fn a_group_delivers_up_to_its_first_invisible_message() {
        let (deliver, dead) =
            walk(&[&[("a1", true, 0), ("a2", false, 1), ("a3", true, 0)], &[("b1", false, 1), ("b2", true, 0)]], 10);
        assert_eq!((deliver, dead), (vec!["a1"], vec![]));
    }

    #[test]
    fn exhausted_messages_die_without_counting_and_max_stops_the_walk() {
        let (deliver, dead) = walk(&[&[("a1", true, 3), ("a2", true, 0)], &[("b1", true, 0), ("b2", true, 0)]], 2);
        assert_eq!((deliver, dead), (vec!["a2", "b1"], vec!["a1"]));
        assert_eq!(walk(&[&[("a1", true, 0)]], 0), (vec![], vec![]));
    }
}
