import type { SubscriptionType } from "./contract.js";
import type { Config, ResolvedConfig, TokenProvider } from "./config.js";
import { OddstreamError } from "./errors.js";
import type { ManagerEventListener, ManagerEvents, StateDetail, Stats } from "./events.js";
import type { FilterInput } from "./filters.js";
import { ConnectionState } from "./state.js";
import { Subscription } from "./subscription.js";
import type { SubscribeOptions, SubscriptionInfo } from "./subscription.js";
import type { ConnectionStatus, DataFrameFor, Identity, WelcomeFrame } from "./types.js";
/**
 * A reconnecting Oddstream connection with the seed's WebSocket manager API.
 *
 * Events (`on(name, listener)` or `addEventListener(name, e => e.detail)`): see ManagerEvents.
 */
export declare class WebSocketManager extends EventTarget {
    private _config;
    private readonly _subscriptions;
    private _state;
    private _stateDetail;
    private _welcome;
    private _identity;
    private _lastError;
    private readonly _sessions;
    private _token;
    private _ws;
    private readonly _pending;
    private _ids;
    private _notes;
    private _attempt;
    /** Bumped by every _open and disconnect: late callbacks check it. */
    private _generation;
    private _everConnected;
    /** The caller wants a connection (connect() and no disconnect()). */
    private _wanted;
    private _timer;
    private _pinger;
    private _watchdog;
    private _connectWaiters;
    private readonly _stats;
    private readonly _onWake;
    private readonly _onVisibility;
    constructor(config?: Partial<Config>);
    /** The current settings; change them with `setConfig()`. */
    get config(): Readonly<ResolvedConfig>;
    /** Subscriptions by key, in the order they were made; kept across reconnects. */
    get subscriptions(): ReadonlyMap<string, Subscription>;
    /** Where the connection is: connecting, connected, reconnecting, disconnected, closed. */
    get state(): ConnectionState;
    /** The detail of the last `state` event. */
    get stateDetail(): StateDetail;
    /** The last connection's welcome frame, or null before the first. */
    get welcome(): WelcomeFrame | null;
    /** Who the last connection was, or null before the first. */
    get identity(): Identity | null;
    /** Why the manager gave up (state CLOSED), or null. */
    get lastError(): OddstreamError | null;
    /** state === "connected". */
    get connected(): boolean;
    /** A snapshot of the counters. */
    get stats(): Stats;
    /** The WebSocket URL this manager connects to. */
    get url(): string;
    /** Change settings (see DEFAULT_CONFIG); takes effect at the next (re)connect. */
    setConfig(partial?: Partial<Config>): Readonly<ResolvedConfig>;
    /** Listen to an event; returns a function that stops listening. */
    on<K extends keyof ManagerEvents>(name: K, listener: (detail: ManagerEvents[K]) => void): () => void;
    addEventListener<K extends keyof ManagerEvents>(type: K, listener: ManagerEventListener<K> | null, options?: boolean | AddEventListenerOptions): void;
    addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
    removeEventListener<K extends keyof ManagerEvents>(type: K, listener: ManagerEventListener<K> | null, options?: boolean | EventListenerOptions): void;
    removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
    /**
     * Connect, retrying per the backoff settings; resolves once the gateway said welcome (and
     * every remembered subscription is back). `token` may be a string, a provider function
     * (async () => token; it becomes `config.token_provider`), or omitted for an anonymous
     * connection. Rejects with the error the manager gave up on (see `lastError`), or a
     * ConnectionError if `disconnect()` is called first.
     */
    connect(token?: string | null | TokenProvider): Promise<void>;
    /** Close for good (no reconnect). Subscriptions are kept and sent again on connect(). */
    disconnect(reason?: string): void;
    /** Disconnect and drop every listener the manager set on the page. */
    destroy(): void;
    /**
     * Subscribe; resolves with the Subscription once the gateway confirmed it, rejects with a
     * SubscriptionError / AuthError (with `hint`) if it refused. While reconnecting the
     * subscription waits and is sent as soon as the connection is back. Subscribing again with
     * the same type and filters returns the existing subscription (adding `onMessage`).
     * `options.position` resumes from a saved `Subscription.position` (see SubscribeOptions);
     * after every reconnect a subscription resumes from its own latest position by itself.
     */
    subscribe<T extends SubscriptionType>(type: T, filters?: FilterInput<T>, onMessage?: ((frame: DataFrameFor<T>) => void) | null, options?: SubscribeOptions): Promise<Subscription<T>>;
    /** Unsubscribe; resolves when the gateway agreed (at once when not connected). */
    unsubscribe(subscription: Subscription): Promise<void>;
    /** Unsubscribe by type and filters; resolves when the gateway agreed (at once when not
     * connected: nothing will be re-sent). */
    unsubscribe<T extends SubscriptionType>(type: T, filters?: FilterInput<T>): Promise<void>;
    /** The subscriptions as plain objects, in the order they were made. */
    subscriptionList(): SubscriptionInfo[];
    /**
     * Round trip to the gateway in ms (also kept in stats.latency_ms). Rejects with a
     * ConnectionError: `not_connected` when not connected or the connection drops meanwhile,
     * `request_timeout` after `config.request_timeout`.
     */
    ping(): Promise<number>;
    /** The gateway's view of this connection (rooms, counters). Rejects like `ping()`. */
    status(): Promise<ConnectionStatus>;
    private _open;
    private _welcomed;
    /** Send one subscription on `ws` (from its position, if it has one); how it was
     * confirmed, or null. Refusals end the subscription. */
    private _sendSubscribe;
    private _receive;
    /** One message from the gateway (alone, or one of a batch). */
    private _handle;
    private _data;
    /** A room's state: to the subscription(s) of that room waiting for it. */
    private _snapshot;
    private _serviceAlert;
    private _refreshToken;
    private _closed;
    /** Why a connection could not be opened: ask the gateway over HTTP (GET /ws/v2/whoami). */
    private _diagnose;
    private _ended;
    private _giveUp;
    /** Subscriptions never confirmed end with `error` (their promises must not hang); those
     * confirmed before stay, to be sent again by the next connect(). */
    private _dropUnconfirmed;
    /** Back online or visible again: skip the rest of the backoff wait, try now. */
    private _wake;
    private _abort;
    private _closedWithoutServer;
    private _detach;
    private _endSession;
    private _clearTimer;
    private _maxAttempts;
    private _armWatchdog;
    private _feedWatchdog;
    private _startPinger;
    private _send;
    private _request;
    private _setState;
    private _settleWaiters;
    private _notify;
    private _notifyError;
    private _emit;
}
/** The seed's shared instance, for pages with one connection. */
export declare const webSocketManager: WebSocketManager;
