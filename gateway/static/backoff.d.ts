import type { Config } from "./config.js";
/** Delay in ms before reconnect attempt `attempt` (1-based), before jitter. */
export declare function backoffDelay(config: Pick<Config, "reconnect_interval" | "reconnect_factor" | "max_reconnect_interval">, attempt: number): number;
