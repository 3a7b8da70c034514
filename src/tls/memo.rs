//! Memo: small per-thread caches that remember a computed value by its input, so work that
//! repeats from connection to connection (JA4 hashes, X.509 parsing) runs once per distinct
//! input.

use rustc_hash::FxHashMap;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::thread::LocalKey;

/// `compute()`, remembered in a per-thread `cache` of at most `max` entries under the key
/// `own()` makes of `key`; when full, one arbitrary entry makes room (more distinct keys than
/// entries lowers the hit rate gradually instead of emptying the cache at every turn).
pub(crate) fn memo<K, Q, V>(
    cache: &'static LocalKey<RefCell<FxHashMap<K, V>>>,
    key: &Q,
    max: usize,
    own: impl FnOnce() -> K,
    compute: impl FnOnce() -> V,
) -> V
where
    K: Borrow<Q> + std::hash::Hash + Eq + Clone,
    Q: std::hash::Hash + Eq + ?Sized,
    V: Clone,
{
    cache.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return compute();
        };
        if let Some(v) = cache.get(key) {
            return v.clone();
        }
        let v = compute();
        if cache.len() >= max {
            if let Some(k) = cache.keys().next().cloned() {
                cache.remove(k.borrow());
            }
        }
        cache.insert(own(), v.clone());
        v
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static SQUARES: RefCell<FxHashMap<u32, u64>> = RefCell::new(FxHashMap::default());
    }

    #[test]
    fn computes_once_per_key_and_stays_bounded() {
        let mut runs = 0;
        for k in [3u32, 3, 4, 5, 3] {
            let v = memo(
                &SQUARES,
                &k,
                2,
                || k,
                || {
                    runs += 1;
                    u64::from(k * k)
                },
            );
            assert_eq!(v, u64::from(k * k));
        }
        assert!((3..=4).contains(&runs), "{runs}");
        assert!(SQUARES.with(|c| c.borrow().len()) <= 2);
    }
}
