//! kiln-storage: storage URI -> local cached model folder (in progress).
