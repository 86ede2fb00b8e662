//! Walking an error's `source()` chain, written once: finding a cause of a given type
//! (a body-limit error under hyper's or axum's wrappers) and printing the chain on one line.

use std::error::Error;

/// The error itself, then each of its sources in turn.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.source();
        Some(current)
    })
}

/// The first error of type `T` in the chain of `error` (the error itself included).
pub fn find_cause<'a, T: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a T> {
    chain(error).find_map(|e| e.downcast_ref::<T>())
}

/// The error and its sources on one line, `a: b: c`, each source added only when it says
/// something the line does not already say; runs of whitespace become one space.
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut text = String::new();
    for cause in chain(error) {
        let more = cause.to_string();
        if more.is_empty() || text.contains(&more) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&more);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading the body")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("limit of {0}\n bytes")]
    struct Inner(u32);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the body")]
    struct Repeats(#[source] Outer);

    #[test]
    fn finds_a_cause_by_type_and_prints_the_chain_once() {
        let error = Repeats(Outer(Inner(5)));
        assert_eq!(chain(&error).count(), 3);
        assert_eq!(find_cause::<Inner>(&error).map(|i| i.0), Some(5));
        assert!(find_cause::<std::io::Error>(&error).is_none());
        assert_eq!(one_line(&error), "reading the body: limit of 5 bytes");
    }
}
