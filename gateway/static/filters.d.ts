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
export type FiltersFor<T extends SubscriptionType> = [AllowedFilterKeys[T]] extends [never] ? Record<string, never> : Pick<Filters, AllowedFilterKeys[T]>;
/**
 * Filters as `subscribe()` and `unsubscribe()` take them: `null`, `undefined` and `""` mean
 * "no filter" and are dropped before sending, so a form's empty field can be passed as is.
 */
export type FilterInput<T extends SubscriptionType = SubscriptionType> = {
    [K in keyof FiltersFor<T>]?: FiltersFor<T>[K] | null | undefined;
};
/** Canonical key of a subscription: its type and filters with sorted keys. */
export declare function subscriptionKey<T extends SubscriptionType>(type: T, filters?: FilterInput<T>): string;
/**
 * Filters as `subscribe()` sends them: empty values dropped, then canonicalised as the gateway
 * does (trimmed, sport upper-case, ids as strings, lists sorted and deduplicated). With it,
 * `subscriptionKey(type, canonicalFilters(filters))` is the key `subscribe()` files the
 * subscription under in `manager.subscriptions`, for any spelling of the same room.
 */
export declare function canonicalFilters<T extends SubscriptionType>(filters: FilterInput<T> | null | undefined): FiltersFor<T>;
