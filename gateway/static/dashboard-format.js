// How the dashboard writes prices, lines and times.

export const american = (price) => (price > 0 ? `+${price}` : String(price));
export const time = (at) => new Date(at).toLocaleTimeString([], { hour12: false });

export function signed(value) {
  return value > 0 ? `+${value}` : String(value);
}
