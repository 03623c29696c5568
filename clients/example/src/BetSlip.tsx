import { useState } from "react";

/** One pick on the slip, priced when it was added. */
export interface Selection {
  id: string;
  game: string;
  pick: string;
  market: string;
  sportsbook: string;
  /** American odds. */
  price: number;
}

/** Profit on `stake` at American odds `price`. */
export function payout(stake: number, price: number): number {
  if (!Number.isFinite(stake) || !Number.isFinite(price) || price === 0) return 0;
  return price > 0 ? (stake * price) / 100 : (stake * 100) / -price;
}

export function BetSlip({
  selections,
  onRemove,
  formatPrice,
}: {
  selections: Selection[];
  onRemove: (id: string) => void;
  formatPrice: (price: unknown) => string;
}) {
  const [stake, setStake] = useState(10);
  return (
    <section className="slip" data-testid="bet-slip">
      <h2>Bet slip</h2>
      {selections.length === 0 ? <p className="os-muted">Click a price to add it.</p> : null}
      <ul>
        {selections.map((s) => (
          <li key={s.id}>
            <div>
              <strong>{s.pick}</strong> {formatPrice(s.price)}
              <div className="os-muted">
                {s.game} · {s.market} · {s.sportsbook}
              </div>
            </div>
            <span className="slip__win">wins {payout(stake, s.price).toFixed(2)}</span>
            <button type="button" className="os-toast__close" aria-label={`Remove ${s.pick}`} onClick={() => onRemove(s.id)}>
              ×
            </button>
          </li>
        ))}
      </ul>
      <label>
        Stake per bet{" "}
        <input type="number" min={1} value={stake} onChange={(e) => setStake(Number(e.target.value))} />
      </label>
    </section>
  );
}
