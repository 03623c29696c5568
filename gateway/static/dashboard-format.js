// How the dashboard writes prices, lines and times.

export const american = (price) => (price === undefined || price === null ? "\u2014" : price > 0 ? `+${price}` : String(price));
export const time = (at) => new Date(at).toLocaleTimeString([], { hour12: false });

export function signed(value) {
  return value > 0 ? `+${value}` : String(value);
}

/** "1.909 · 10/11": a side's decimal and fractional price (its American one is shown). */
export function priceTitle(price) {
  return price ? `${price.decimal} · ${price.fractional}` : null;
}

/** Whether event id `id` ("<partition>:<ms>-<seq>") comes after `than` (absent: yes). The
 * events of one game share a partition, so their ids are ordered; ids of two partitions
 * are not comparable, and the newer arrival wins. */
export function isNewerEvent(id, than) {
  if (!than) return true;
  const [pa, a] = id.split(":");
  const [pb, b] = than.split(":");
  if (pa !== pb || !a || !b) return true;
  const [ams, aseq] = a.split("-").map(Number);
  const [bms, bseq] = b.split("-").map(Number);
  return ams > bms || (ams === bms && aseq > bseq);
}
