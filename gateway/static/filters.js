// Subscription filters: the types `subscribe()` takes, and how filters are canonicalised
// (as the gateway does) and keyed, so two spellings of one room are one Subscription.
import { ALLOWED_FILTERS, LIST_FILTERS } from "./contract.js";
/** Filters that are numbers (a bound), not strings or lists: every filter the contract knows
 * that is not one of its LIST_FILTERS. */
const NUMBER_FILTERS = new Set(Object.values(ALLOWED_FILTERS)
    .flat()
    .filter((name) => !LIST_FILTERS.includes(name)));
/** Canonical key of a subscription: its type and filters with sorted keys. */
export function subscriptionKey(type, filters = {}) {
    const given = filters;
    const sorted = Object.keys(given)
        .filter((k) => given[k] !== undefined && given[k] !== null && given[k] !== "")
        .sort()
        .map((k) => [k, given[k]]);
    return `${type}:${JSON.stringify(sorted)}`;
}
/** @internal Filters as the gateway canonicalises them (trimmed, sport upper-case, ids as
 * strings, lists sorted), so two spellings of one room are one Subscription here too. */
export function cleanFilters(filters) {
    const one = (key, value) => {
        if (NUMBER_FILTERS.has(key))
            return value;
        const text = String(value).trim();
        return key === "sport" ? text.toUpperCase() : text;
    };
    const out = {};
    const given = (filters ?? {});
    for (const [key, value] of Object.entries(given)) {
        if (value === undefined || value === null || value === "")
            continue;
        if (Array.isArray(value)) {
            const values = [...new Set(value.map((v) => one(key, v)))].sort();
            out[key] = values.length === 1 ? values[0] : values;
        }
        else {
            out[key] = one(key, value);
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
export function canonicalFilters(filters) {
    return cleanFilters(filters);
}
