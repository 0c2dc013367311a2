// Per-isolate memo tables: the same names, ids and settings recur event after event, so work
// keyed by them is done once. Bounded: when full, a table starts over (cheaper than LRU
// bookkeeping, and the working set refills at once).
export class Memo<K, V> extends Map<K, V> {
  constructor(private readonly limit = 10_000) {
    super()
  }

  /** The value for `key`, computed by `make` the first time. */
  of(key: K, make: (key: K) => V): V {
    let value = super.get(key)
    if (value === undefined && !super.has(key)) {
      value = make(key)
      this.put(key, value)
    }
    return value as V
  }

  put(key: K, value: V): this {
    if (this.size >= this.limit) this.clear()
    return super.set(key, value)
  }
}
