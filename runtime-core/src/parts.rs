//! What services keep beside the runtime's own state, each value in a slot of its own: an
//! instance's per-service parts ([`State::part`](crate::State::part)) and what the host shares
//! with every service's settings ([`Sources::share`](crate::settings::Sources::share)).
//!
//! A type that is kept declares its slot with [`part!`](crate::part), or, for a service's shared
//! context, with [`service_context!`](crate::service_context). The slot is a number taken once
//! per type when the process first uses it, the same in every store: a read is an index and a
//! check of the value's type, with no hashing and no search.

use std::any::Any;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The slots taken so far in this process.
static TAKEN: AtomicUsize = AtomicUsize::new(0);

/// The slot of one kept type: declared once per type (by [`part!`](crate::part)), numbered on
/// first use.
#[derive(Debug)]
pub struct PartSlot(OnceLock<usize>);

impl PartSlot {
    /// A slot with no number yet.
    #[allow(
        clippy::new_without_default,
        reason = "a slot is made in a `static`, which takes a `const fn`"
    )]
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    fn index(&self) -> usize {
        *self.0.get_or_init(|| TAKEN.fetch_add(1, Ordering::Relaxed))
    }
}

/// A type kept in [`Parts`], in the slot it declares. Implement it with [`part!`](crate::part).
pub trait Part: Any + Send + Sync {
    /// The type's slot, one `static` per type.
    fn slot() -> &'static PartSlot;
}

/// Declares the slot of each type given, so that it can be kept in an instance's state or shared
/// with the settings: `tempo_runtime_core::part!(InstanceHttp);`.
#[macro_export]
macro_rules! part {
    ($($part:ty),+ $(,)?) => {
        $(
            impl $crate::parts::Part for $part {
                fn slot() -> &'static $crate::parts::PartSlot {
                    $crate::part_slot!()
                }
            }
        )+
    };
}

/// The body of a `slot()`: a `static` of its own for the type whose impl it is in. For
/// [`part!`](crate::part) and [`service_context!`](crate::service_context).
#[doc(hidden)]
#[macro_export]
macro_rules! part_slot {
    () => {{
        static SLOT: $crate::parts::PartSlot = $crate::parts::PartSlot::new();
        &SLOT
    }};
}

/// Values of types that declare a [`Part`] slot, at most one of each type.
#[derive(Default)]
pub struct Parts {
    slots: Vec<Option<Box<dyn Any + Send + Sync>>>,
}

impl Parts {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of type `P`, if one was put.
    pub fn get<P: Part>(&self) -> Option<&P> {
        self.slots
            .get(P::slot().index())?
            .as_deref()?
            .downcast_ref()
    }

    /// The value of type `P`, mutably, if one was put.
    pub fn get_mut<P: Part>(&mut self) -> Option<&mut P> {
        self.slots
            .get_mut(P::slot().index())?
            .as_deref_mut()?
            .downcast_mut()
    }

    /// Puts `part` in its slot, in place of the one there was.
    pub fn insert<P: Part>(&mut self, part: P) {
        *self.slot_mut::<P>() = Some(Box::new(part));
    }

    /// The value of type `P`, put first by `make` if there is none.
    pub fn get_or_insert_with<P: Part>(&mut self, make: impl FnOnce() -> P) -> &mut P {
        let slot = self.slot_mut::<P>();
        if !slot.as_deref().is_some_and(|part| part.is::<P>()) {
            *slot = Some(Box::new(make()));
        }
        slot.as_deref_mut()
            .and_then(|part| part.downcast_mut())
            .unwrap_or_else(|| unreachable!("the slot was just filled with a `P`"))
    }

    fn slot_mut<P: Part>(&mut self) -> &mut Option<Box<dyn Any + Send + Sync>> {
        let index = P::slot().index();
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        &mut self.slots[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Greeting(&'static str);
    struct Count(u32);
    crate::part!(Greeting, Count);

    #[test]
    fn each_type_reads_back_its_own_value() {
        let mut parts = Parts::new();
        assert!(parts.get::<Greeting>().is_none());
        parts.insert(Count(1));
        assert!(
            parts.get::<Greeting>().is_none(),
            "a slot holds only its type"
        );
        parts.insert(Greeting("hello"));
        parts.get_mut::<Count>().unwrap().0 += 1;
        assert_eq!(parts.get::<Greeting>().map(|g| g.0), Some("hello"));
        assert_eq!(parts.get::<Count>().map(|c| c.0), Some(2));
        parts.insert(Count(7));
        assert_eq!(parts.get::<Count>().map(|c| c.0), Some(7), "a put replaces");
    }

    #[test]
    fn a_value_is_made_only_where_there_is_none() {
        let mut parts = Parts::new();
        parts.get_or_insert_with(|| Count(1)).0 += 1;
        assert_eq!(parts.get_or_insert_with(|| Count(10)).0, 2);
        assert_ne!(Greeting::slot().index(), Count::slot().index());
    }
}
