// Subscription filters: the types `subscribe()` takes, and how filters are canonicalised
// (as the gateway does) and keyed, so two spellings of one room are one Subscription.

import { ALLOWED_FILTERS, LIST_FILTERS } from "./contract.js";
import type { AllowedFilterKeys, SubscriptionType } from "./contract.js";

/**
 * Every filter the gateway knows. A list means "any of these"; an absent filter matches
 * everything. `sport` matches case-insensitively, the others by equality. Which filters a
 * subscription type accepts is `AllowedFilterKeys` (from the contract).
 */
export interface Filters {
  /** e.g. "NBA"; case-insensitive. */
  sport?: string | readonly string[];
  /** Numbers are accepted and compared as strings. */
  game_id?: string | number | readonly (string | number)[];
  player?: string | readonly string[];
  /** Matches an event quoting any of these books. */
  sportsbook?: string | readonly string[];
  /** Lower bound on an arbitrage opportunity's profit, in percent (0 to 1000). */
  min_profit?: number;
}

/** The filters subscription type `T` accepts (none for `portfolio`: the gateway scopes it to
 * the token's user). */
export type FiltersFor<T extends SubscriptionType> = [AllowedFilterKeys[T]] extends [never]
  ? Record<string, never>
  : Pick<Filters, AllowedFilterKeys[T]>;

/**
 * Filters as `subscribe()` and `unsubscribe()` take them: `null`, `undefined` and `""` mean
 * "no filter" and are dropped before sending, so a form's empty field can be passed as is.
 */
export type FilterInput<T extends SubscriptionType = SubscriptionType> = {
  [K in keyof FiltersFor<T>]?: FiltersFor<T>[K] | null | undefined;
};

type FilterValue = string | number | readonly (string | number)[];
type CleanFilters = Record<string, string | number | (string | number)[]>;

/** Filters that are numbers (a bound), not strings or lists: every filter the contract knows
 * that is not one of its LIST_FILTERS. */
const NUMBER_FILTERS: ReadonlySet<string> = new Set(
  Object.values(ALLOWED_FILTERS)
    .flat()
    .filter((name) => !LIST_FILTERS.includes(name)),
);

/** Canonical key of a subscription: its type and filters with sorted keys. */
export function subscriptionKey<T extends SubscriptionType>(
  type: T,
  filters: FilterInput<T> = {},
): string {
  const given = filters as Record<string, FilterValue | null | undefined>;
  const sorted = Object.keys(given)
    .filter((k) => given[k] !== undefined && given[k] !== null && given[k] !== "")
    .sort()
    .map((k) => [k, given[k]]);
  return `${type}:${JSON.stringify(sorted)}`;
}

/** @internal Filters as the gateway canonicalises them (trimmed, sport upper-case, ids as
 * strings, lists sorted), so two spellings of one room are one Subscription here too. */
export function cleanFilters(filters: FilterInput | null | undefined): CleanFilters {
  const one = (key: string, value: string | number): string | number => {
    if (NUMBER_FILTERS.has(key)) return value;
    const text = String(value).trim();
    return key === "sport" ? text.toUpperCase() : text;
  };
  const out: CleanFilters = {};
  const given = (filters ?? {}) as Record<string, FilterValue | null | undefined>;
  for (const [key, value] of Object.entries(given)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      const values = [...new Set(value.map((v: string | number) => one(key, v)))].sort();
      out[key] = values.length === 1 ? (values[0] as string | number) : values;
    } else {
      out[key] = one(key, value as string | number);
    }
  }
  return out;
}

/**
 * Filters as `subscribe()` sends them: empty values dropped, then canonicalised as the gateway
 * does (trimmed, sport upper-case, ids as strings, lists sorted and deduplicated). With it,
 * `subscriptionKey(type, canonicalFilters(filters))` is the key `subscribe()` files the
 * subscription under in `manager.subscriptions`, for any spelling of the same room.
 */
export function canonicalFilters<T extends SubscriptionType>(
  filters: FilterInput<T> | null | undefined,
): FiltersFor<T> {
  return cleanFilters(filters as FilterInput | null | undefined) as FiltersFor<T>;
}
