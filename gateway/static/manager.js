// The WebSocketManager: one reconnecting connection to a gateway (connect, welcome and
// resubscribe, receive and dispatch, heartbeats, token refresh, close-code advice and
// backoff), and the seed's shared instance.
import { CLOSE_EXPLANATIONS, CloseAdvice as CLOSE_ADVICE, CloseCodes, DATA_MESSAGE_TYPES, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX, closeAdvice, } from "./contract.js";
import { backoffDelay, jittered } from "./backoff.js";
import { DEFAULT_CONFIG, checkBatch, defaultBaseUrl } from "./config.js";
import { AuthError, ConnectionError, OddstreamError, SessionLost, SubscriptionError, errorFor, } from "./errors.js";
import { cleanFilters, subscriptionKey } from "./filters.js";
import { ConnectionState } from "./state.js";
import { Subscription } from "./subscription.js";
/** Browser close codes that never come from a gateway: the connection failed or dropped. */
const ABNORMAL_CLOSURE = 1006;
const TLS_HANDSHAKE_FAILED = 1015;
/** The code the client closes a link it gave up on with (4000-4099: reconnect now). */
const CLIENT_ABORT = 4000;
/**
 * A reconnecting Oddstream connection with the seed's WebSocket manager API.
 *
 * Events (`on(name, listener)` or `addEventListener(name, e => e.detail)`): see ManagerEvents.
 */
export class WebSocketManager extends EventTarget {
    _config;
    _subscriptions = new Map();
    _state = ConnectionState.CLOSED;
    _stateDetail = { state: ConnectionState.CLOSED };
    _welcome = null;
    _identity = null;
    _lastError = null;
    _sessions = new WeakMap();
    _token = null;
    _ws = null;
    _pending = new Map();
    _ids = 0;
    _notes = 0;
    _attempt = 0;
    /** Bumped by every _open and disconnect: late callbacks check it. */
    _generation = 0;
    _everConnected = false;
    /** The caller wants a connection (connect() and no disconnect()). */
    _wanted = false;
    _timer = null;
    _pinger = null;
    _watchdog = null;
    _connectWaiters = [];
    _stats = {
        duplicates: 0,
        resumes: 0,
        resyncs: 0,
        messages_received: 0,
        data_messages: 0,
        reconnects: 0,
        token_refreshes: 0,
        latency_ms: null,
        connected_since: null,
        last_message_at: null,
        url: null,
    };
    _onWake = () => this._wake();
    _onVisibility = () => {
        const doc = globalThis.document;
        if (!doc || doc.visibilityState === "visible")
            this._wake();
    };
    constructor(config = {}) {
        super();
        this._config = { ...DEFAULT_CONFIG, base_url: defaultBaseUrl() };
        this.setConfig(config);
        if (typeof globalThis.addEventListener === "function") {
            globalThis.addEventListener("online", this._onWake);
            globalThis.document?.addEventListener("visibilitychange", this._onVisibility);
        }
    }
    // --- public API -------------------------------------------------------------------------
    /** The current settings; change them with `setConfig()`. */
    get config() {
        return this._config;
    }
    /** Subscriptions by key, in the order they were made; kept across reconnects. */
    get subscriptions() {
        return this._subscriptions;
    }
    /** Where the connection is: connecting, connected, reconnecting, disconnected, closed. */
    get state() {
        return this._state;
    }
    /** The detail of the last `state` event. */
    get stateDetail() {
        return this._stateDetail;
    }
    /** The last connection's welcome frame, or null before the first. */
    get welcome() {
        return this._welcome;
    }
    /** Who the last connection was, or null before the first. */
    get identity() {
        return this._identity;
    }
    /** Why the manager gave up (state CLOSED), or null. */
    get lastError() {
        return this._lastError;
    }
    /** state === "connected". */
    get connected() {
        return this._state === ConnectionState.CONNECTED;
    }
    /** A snapshot of the counters. */
    get stats() {
        return { ...this._stats, subscriptions: this._subscriptions.size, state: this._state };
    }
    /** The WebSocket URL this manager connects to. */
    get url() {
        return this._config.base_url + this._config.path;
    }
    /** Change settings (see DEFAULT_CONFIG); takes effect at the next (re)connect. */
    setConfig(partial) {
        const config = this._config;
        for (const [key, value] of Object.entries(partial ?? {})) {
            if (!(key in DEFAULT_CONFIG))
                throw new TypeError(`oddstream: unknown setting '${key}'`);
            config[key] = value;
        }
        const base = this._config.base_url;
        this._config.base_url = String(base === null ? defaultBaseUrl() : base).replace(/\/+$/, "");
        checkBatch(this._config.batch);
        return this._config;
    }
    /** Listen to an event; returns a function that stops listening. */
    on(name, listener) {
        const handler = (event) => listener(event.detail);
        this.addEventListener(name, handler);
        return () => this.removeEventListener(name, handler);
    }
    addEventListener(type, listener, options) {
        super.addEventListener(type, listener, options);
    }
    removeEventListener(type, listener, options) {
        super.removeEventListener(type, listener, options);
    }
    /**
     * Connect, retrying per the backoff settings; resolves once the gateway said welcome (and
     * every remembered subscription is back). `token` may be a string, a provider function
     * (async () => token; it becomes `config.token_provider`), or omitted for an anonymous
     * connection. Rejects with the error the manager gave up on (see `lastError`), or a
     * ConnectionError if `disconnect()` is called first.
     */
    connect(token) {
        if (typeof token === "function") {
            this._config.token_provider = token;
        }
        else if (token !== undefined) {
            this._config.token_provider = null; // an explicit token replaces a provider
            this._token = token || null;
        }
        this._wanted = true;
        const waiter = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
        if (this._state === ConnectionState.CLOSED || this._state === ConnectionState.RECONNECTING) {
            this._attempt = 0;
            this._lastError = null;
            this._clearTimer();
            void this._open();
        }
        else if (this._state === ConnectionState.CONNECTED) {
            this._settleWaiters(null);
        }
        return waiter;
    }
    /** Close for good (no reconnect). Subscriptions are kept and sent again on connect(). */
    disconnect(reason = "closed by client") {
        this._wanted = false;
        this._generation += 1;
        this._clearTimer();
        const ws = this._ws;
        if (ws) {
            this._detach(ws);
            try {
                ws.close(CloseCodes.NORMAL, reason);
            }
            catch {
                // already closing
            }
        }
        this._endSession();
        this._setState(ConnectionState.CLOSED, { reason, close_code: CloseCodes.NORMAL });
        const error = new ConnectionError("closed", "disconnect() was called", {
            hint: "Call connect() to connect again.",
        });
        this._dropUnconfirmed(error);
        this._settleWaiters(error);
    }
    /** Disconnect and drop every listener the manager set on the page. */
    destroy() {
        this.disconnect("destroyed");
        if (typeof globalThis.removeEventListener === "function") {
            globalThis.removeEventListener("online", this._onWake);
            globalThis.document?.removeEventListener("visibilitychange", this._onVisibility);
        }
    }
    /**
     * Subscribe; resolves with the Subscription once the gateway confirmed it, rejects with a
     * SubscriptionError / AuthError (with `hint`) if it refused. While reconnecting the
     * subscription waits and is sent as soon as the connection is back. Subscribing again with
     * the same type and filters returns the existing subscription (adding `onMessage`).
     * `options.position` resumes from a saved `Subscription.position` (see SubscribeOptions);
     * after every reconnect a subscription resumes from its own latest position by itself.
     */
    subscribe(type, filters = {}, onMessage = null, options = {}) {
        const clean = cleanFilters(filters);
        const key = subscriptionKey(type, clean);
        let sub = this._subscriptions.get(key);
        if (!sub) {
            if (!this._wanted) {
                return Promise.reject(new ConnectionError("not_connected", "Not connected.", {
                    hint: "Call connect() before subscribe().",
                }));
            }
            sub = new Subscription(this, type, clean);
            sub._position = options.position || null;
            sub._wantSnapshot = options.snapshot ?? true;
            const stored = sub;
            this._subscriptions.set(key, stored);
            this._emit("subscriptions", this.subscriptionList());
            // Also while resubscribing after a welcome: that batch was taken before this one.
            const ws = this._ws;
            if (ws && this._sessions.get(ws)?.welcomed)
                void this._sendSubscribe(stored, ws);
        }
        if (onMessage)
            sub.onMessage(onMessage);
        return sub.ready;
    }
    async unsubscribe(typeOrSubscription, filters = {}) {
        const sub = typeOrSubscription instanceof Subscription
            ? typeOrSubscription
            : this._subscriptions.get(subscriptionKey(typeOrSubscription, cleanFilters(filters)));
        if (!sub || this._subscriptions.get(sub.key) !== sub)
            return;
        this._subscriptions.delete(sub.key);
        sub._end(new SubscriptionError("unsubscribed", "Unsubscribed before it was confirmed."));
        this._emit("subscriptions", this.subscriptionList());
        if (!this.connected)
            return;
        const body = sub.room
            ? { type: "unsubscribe", room: sub.room }
            : { type: "unsubscribe", subscription_type: sub.type, filters: sub.filters };
        try {
            await this._request(body);
        }
        catch (error) {
            if (error instanceof SessionLost)
                return;
            if (error instanceof OddstreamError && error.code === "not_subscribed")
                return;
            throw error;
        }
    }
    /** The subscriptions as plain objects, in the order they were made. */
    subscriptionList() {
        return [...this._subscriptions.values()].map((sub) => sub.toJSON());
    }
    /**
     * Round trip to the gateway in ms (also kept in stats.latency_ms). Rejects with a
     * ConnectionError: `not_connected` when not connected or the connection drops meanwhile,
     * `request_timeout` after `config.request_timeout`.
     */
    async ping() {
        const started = performance.now();
        await this._request({ type: "ping" });
        const latency = Math.round((performance.now() - started) * 10) / 10;
        this._stats.latency_ms = latency;
        this._emit("stats", this.stats);
        return latency;
    }
    /** The gateway's view of this connection (rooms, counters). Rejects like `ping()`. */
    async status() {
        return (await this._request({ type: "status" })).data;
    }
    // --- connecting -------------------------------------------------------------------------
    async _open() {
        this._clearTimer();
        const generation = ++this._generation;
        if (this._ws) {
            // connect() during an attempt in flight: that attempt is abandoned, not leaked.
            const stale = this._ws;
            this._detach(stale);
            this._endSession();
            try {
                stale.close(CloseCodes.NORMAL, "superseded");
            }
            catch {
                // already closed
            }
        }
        const reconnecting = this._everConnected || this._attempt > 0;
        this._setState(reconnecting ? ConnectionState.RECONNECTING : ConnectionState.CONNECTING, {
            attempt: this._attempt,
            max_attempts: this._maxAttempts(),
            connecting: true,
        });
        const provider = this._config.token_provider;
        if (provider) {
            let token;
            try {
                token = await provider();
            }
            catch (error) {
                if (generation !== this._generation)
                    return;
                this._ended({
                    advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
                    reason: "the token provider failed",
                    error: new AuthError("token_provider_failed", `Could not get a token: ${error}`, {
                        hint: "Sign in again; retrying.",
                        temporary: true,
                    }),
                });
                return;
            }
            if (generation !== this._generation)
                return; // a newer attempt took over meanwhile
            this._token = token;
        }
        if (!this._wanted)
            return;
        const protocols = [SUBPROTOCOL];
        if (this._token)
            protocols.push(`${TOKEN_SUBPROTOCOL_PREFIX}${this._token}`);
        const query = [];
        if (this._everConnected)
            query.push(`reconnect=${this._attempt || 1}`);
        const batch = this._config.batch;
        if (batch)
            query.push(`batch=${batch.count}`, `batch_ms=${batch.delay_ms}`);
        const url = this.url + (query.length ? `?${query.join("&")}` : "");
        this._stats.url = this.url;
        let ws;
        try {
            ws = new WebSocket(url, protocols);
        }
        catch (error) {
            this._ended({
                advice: CLOSE_ADVICE.TERMINAL,
                reason: "bad gateway URL",
                error: new ConnectionError("invalid_url", `Cannot open ${url}: ${error instanceof Error ? error.message : String(error)}`, { hint: "Check base_url: it must start with ws:// or wss://." }),
            });
            return;
        }
        this._ws = ws;
        const session = { welcomed: false, ended: false };
        this._sessions.set(ws, session);
        const connectTimer = setTimeout(() => {
            if (!session.welcomed)
                this._abort(ws, "no welcome from the gateway in time");
        }, this._config.connect_timeout);
        ws.onmessage = (event) => this._receive(ws, event.data);
        ws.onclose = (event) => {
            clearTimeout(connectTimer);
            this._closed(ws, event.code, event.reason);
        };
        ws.onerror = () => { }; // always followed by close, which says more
    }
    async _welcomed(ws, frame) {
        const session = this._sessions.get(ws);
        if (!session)
            return;
        session.welcomed = true;
        this._welcome = frame;
        const data = frame.data || {};
        this._identity = {
            user: data.user ?? null,
            gateway: data.gateway,
            client_id: frame.client_id,
        };
        this._armWatchdog(ws, data.heartbeat_interval);
        const wasReconnect = this._everConnected;
        const subs = [...this._subscriptions.values()];
        const results = await Promise.allSettled(subs.map((sub) => this._sendSubscribe(sub, ws)));
        if (this._ws !== ws || session.ended)
            return; // lost while resubscribing: handled by close
        const outcomes = results.flatMap((r) => (r.status === "fulfilled" && r.value ? [r.value] : []));
        const back = outcomes.length;
        this._attempt = 0;
        this._everConnected = true;
        this._stats.connected_since = Date.now();
        if (wasReconnect)
            this._stats.reconnects += 1;
        this._setState(ConnectionState.CONNECTED, {
            gateway: data.gateway,
            user: data.user ?? null,
        });
        const who = data.user ? ` as ${data.user}` : "";
        if (wasReconnect) {
            this._notify("success", "Reconnected", `Live updates are back${who}.`);
        }
        else {
            this._notify("success", "Connected", `Connected to the live feed${who}.`);
        }
        if (wasReconnect && subs.length) {
            this._notify("info", "Resubscribed", `Restored ${back} of ${subs.length} subscription${subs.length === 1 ? "" : "s"}.`);
        }
        const resumed = outcomes.filter((o) => o.sent !== null);
        if (resumed.length) {
            this._emit("resume", {
                subscriptions: resumed.length,
                recovered: resumed.filter((o) => o.recovered === true).length,
                resynced: resumed.filter((o) => o.recovered !== true).length,
                replayed: resumed.reduce((sum, o) => sum + (o.recovered === true ? o.replayed : 0), 0),
            });
        }
        this._startPinger(ws);
        this._settleWaiters(null);
    }
    /** Send one subscription on `ws` (from its position, if it has one); how it was
     * confirmed, or null. Refusals end the subscription. */
    async _sendSubscribe(sub, ws) {
        const sent = sub.position;
        let outcome = null;
        const confirm = (frame) => {
            if (this._subscriptions.get(sub.key) !== sub)
                return; // unsubscribed meanwhile
            outcome = sub._confirm(frame, sent);
            if (outcome.sent !== null) {
                if (outcome.recovered === true)
                    this._stats.resumes += 1;
                else
                    this._stats.resyncs += 1;
            }
            if (outcome.sent !== null && outcome.recovered !== true) {
                this._emit("resync", {
                    subscription: sub,
                    position: outcome.sent,
                    confirmation: frame,
                    snapshot: sub._awaitingSnapshot,
                });
            }
        };
        try {
            try {
                await this._request(sub._subscribeBody(), ws, confirm);
            }
            catch (caught) {
                const refused = caught instanceof OddstreamError && caught.code === "invalid_position";
                // A position given to subscribe() is the caller's to fix: the refusal rejects it.
                if (!refused || !sent || !sub._resolved)
                    throw caught;
                // One the gateway gave, but this gateway cannot read (another version?): subscribe
                // afresh, reported as a resync.
                sub._position = null;
                await this._request(sub._subscribeBody(), ws, confirm);
            }
            if (outcome === null)
                return null; // unsubscribed meanwhile
            this._emit("subscriptions", this.subscriptionList());
            return outcome;
        }
        catch (caught) {
            if (caught instanceof SessionLost)
                return null; // sent again after the reconnect
            const error = caught;
            if (error.temporary) {
                // Rate-limited, overloaded or timed out: try again on this connection shortly.
                this._notify("warning", "Subscription delayed", error.message, {
                    suggestion: "Retrying automatically.",
                    code: error.code,
                });
                setTimeout(() => {
                    const live = this._subscriptions.get(sub.key) === sub && this._ws === ws;
                    if (live && !sub.confirmed)
                        void this._sendSubscribe(sub, ws);
                }, backoffDelay(this._config, 1));
                return null;
            }
            if (this._subscriptions.get(sub.key) === sub)
                this._subscriptions.delete(sub.key);
            sub._end(error);
            this._emit("subscriptions", this.subscriptionList());
            this._notifyError(error, "Subscription refused");
            return null;
        }
    }
    // --- receiving --------------------------------------------------------------------------
    _receive(ws, raw) {
        if (this._ws !== ws)
            return;
        let parsed;
        try {
            parsed = JSON.parse(String(raw));
        }
        catch {
            console.warn("oddstream: ignoring a frame that is not JSON");
            return;
        }
        if (!parsed || typeof parsed !== "object")
            return;
        if (Array.isArray(parsed)) {
            // A batch (config.batch): each message in it as if it had come alone, in order.
            for (const item of parsed) {
                if (this._ws !== ws)
                    return; // one of them ended this connection
                if (item && typeof item === "object")
                    this._handle(ws, item);
            }
            return;
        }
        this._handle(ws, parsed);
    }
    /** One message from the gateway (alone, or one of a batch). */
    _handle(ws, frame) {
        this._stats.messages_received += 1;
        this._stats.last_message_at = Date.now();
        this._feedWatchdog(ws);
        this._emit("frame", frame);
        const session = this._sessions.get(ws);
        if (!session)
            return;
        if (!session.welcomed) {
            if (frame.type === "welcome")
                void this._welcomed(ws, frame);
            return;
        }
        const pending = typeof frame.id === "string" ? this._pending.get(frame.id) : undefined;
        if (pending) {
            this._pending.delete(frame.id);
            clearTimeout(pending.timer);
            if (frame.type === "error") {
                pending.reject(errorFor(frame));
            }
            else {
                pending.onReply?.(frame);
                pending.resolve(frame);
            }
            return;
        }
        if (frame.type === "snapshot") {
            this._snapshot(frame);
            return;
        }
        switch (frame.type) {
            case "ping":
                this._send(ws, { type: "pong" });
                break;
            case "token_expiring":
                void this._refreshToken(ws);
                break;
            case "error":
                this._notifyError(errorFor(frame), "Gateway error");
                break;
            default:
                if (DATA_MESSAGE_TYPES.has(frame.type))
                    this._data(frame);
        }
    }
    _data(frame) {
        this._stats.data_messages += 1;
        if (frame.type === "system_alert" && !frame.rooms)
            this._serviceAlert(frame.data || {});
        const rooms = frame.rooms || [];
        let targets = 0;
        let fresh = 0;
        for (const sub of this._subscriptions.values()) {
            if (!sub.room || !rooms.includes(sub.room))
                continue;
            targets += 1;
            if (sub._accept(frame))
                fresh += 1; // each drops what it already delivered
        }
        // A frame of rooms this client no longer holds: the gateway sent it before it handled
        // our unsubscribe. Handing it on would bring back what the caller just removed.
        if (rooms.length > 0 && targets === 0)
            return;
        if (targets > 0 && fresh === 0) {
            this._stats.duplicates += 1;
            return;
        }
        this._emit("message", frame);
    }
    /** A room's state: to the subscription(s) of that room waiting for it. */
    _snapshot(frame) {
        const inRoom = [...this._subscriptions.values()].filter((sub) => sub.room !== null && sub.room === frame.room);
        const waiting = inRoom.filter((sub) => sub._awaitingSnapshot);
        for (const sub of waiting.length ? waiting : inRoom) {
            sub._takeSnapshot(frame);
            this._emit("snapshot", { subscription: sub, frame });
        }
    }
    _serviceAlert(data) {
        const message = data.message;
        if (data.code === "service_degraded") {
            this._notify("warning", "Live updates paused", message, {
                suggestion: "No action needed: updates resume by themselves.",
                code: data.code,
            });
        }
        else if (data.code === "service_restored") {
            this._notify("success", "Live updates resumed", message, { code: data.code });
        }
    }
    async _refreshToken(ws) {
        const provider = this._config.token_provider;
        if (!provider) {
            this._notify("warning", "Session expiring", "Your token expires soon.", {
                suggestion: "Sign in again, or configure token_provider to refresh it automatically.",
                code: "token_expiring",
            });
            return;
        }
        try {
            this._token = await provider();
            await this._request({ type: "auth", token: this._token }, ws);
            this._stats.token_refreshes += 1;
        }
        catch (error) {
            if (!(error instanceof SessionLost)) {
                this._notifyError(error, "Token refresh failed");
            }
        }
    }
    // --- closing and reconnecting -----------------------------------------------------------
    _closed(ws, code, reason) {
        if (this._ws !== ws)
            return;
        const wasConnected = this._sessions.get(ws)?.welcomed ?? false;
        this._detach(ws);
        this._endSession();
        if (!this._wanted)
            return;
        if (!wasConnected && (code === ABNORMAL_CLOSURE || code === TLS_HANDSHAKE_FAILED)) {
            // The upgrade was refused or never reached a gateway; the browser does not say which.
            const generation = this._generation;
            void this._diagnose().then((ended) => {
                if (generation === this._generation)
                    this._ended(ended);
            });
            return;
        }
        const explained = CLOSE_EXPLANATIONS[code];
        const what = explained ? explained[0] : `The connection closed (${code}).`;
        const todo = explained ? explained[1] : null;
        const advice = closeAdvice(code);
        let error = null;
        if (advice === CLOSE_ADVICE.REFRESH_TOKEN) {
            error = new AuthError("token_expired", reason || what, { hint: todo, closeCode: code });
        }
        else if (advice === CLOSE_ADVICE.TERMINAL) {
            const forbidden = code === CloseCodes.FORBIDDEN;
            const make = forbidden ? AuthError : ConnectionError;
            error = new make(forbidden ? "forbidden" : "closed", reason || what, {
                hint: todo,
                closeCode: code,
            });
        }
        this._ended({
            advice,
            reason: reason || what,
            closeCode: code,
            wasConnected,
            error,
            explanation: what,
        });
    }
    /** Why a connection could not be opened: ask the gateway over HTTP (GET /ws/v2/whoami). */
    async _diagnose() {
        const http = this._config.base_url.replace(/^ws/, "http");
        const headers = this._token
            ? { Authorization: `Bearer ${this._token}` }
            : {};
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), this._config.connect_timeout);
        let response;
        try {
            response = await fetch(`${http}/ws/v2/whoami`, { headers, signal: controller.signal });
        }
        catch {
            return {
                advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
                reason: "gateway unreachable",
                closeCode: ABNORMAL_CLOSURE,
                error: new ConnectionError("unreachable", `Cannot reach the gateway at ${this.url}.`, {
                    hint: "Check that the gateway is running and the address is right.",
                    temporary: true,
                }),
            };
        }
        finally {
            clearTimeout(timer);
        }
        let body = {};
        try {
            body = (await response.json()) ?? {};
        }
        catch {
            // not one of ours (a proxy's page): keep the status only
        }
        if (response.status === 401 || response.status === 403) {
            const error = errorFor(body.code ? body : { code: "invalid_token", error: "Refused." });
            const retry = Boolean(this._config.token_provider);
            return {
                advice: retry ? CLOSE_ADVICE.RECONNECT_BACKOFF : CLOSE_ADVICE.TERMINAL,
                reason: error.message,
                closeCode: ABNORMAL_CLOSURE,
                error,
                auth: true,
            };
        }
        return {
            advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
            reason: response.ok
                ? "the gateway refused the connection (busy, rate-limited or restarting)"
                : `the gateway answered HTTP ${response.status}`,
            closeCode: ABNORMAL_CLOSURE,
            error: new ConnectionError("refused", "The gateway refused the connection.", {
                hint: "It may be busy or restarting; retrying with backoff.",
                temporary: true,
            }),
        };
    }
    _ended(ended) {
        if (!this._wanted)
            return;
        const { advice, wasConnected } = ended;
        const config = this._config;
        const final = advice === CLOSE_ADVICE.TERMINAL ||
            !config.auto_reconnect ||
            (advice === CLOSE_ADVICE.REFRESH_TOKEN && !config.token_provider);
        if (wasConnected && !final) {
            this._setState(ConnectionState.DISCONNECTED, {
                close_code: ended.closeCode ?? null,
                reason: ended.reason,
            });
            this._notify("warning", "Disconnected", ended.explanation || ended.reason, {
                code: ended.closeCode ? `close_${ended.closeCode}` : null,
                suggestion: "Reconnecting automatically.",
            });
        }
        if (advice === CLOSE_ADVICE.TERMINAL || !config.auto_reconnect) {
            this._giveUp(ended, ended.error ||
                new ConnectionError("closed", ended.reason, { closeCode: ended.closeCode ?? null }));
            return;
        }
        if (advice === CLOSE_ADVICE.REFRESH_TOKEN && !config.token_provider) {
            this._giveUp(ended, ended.error || new AuthError("token_expired", ended.reason));
            return;
        }
        let delay = 0;
        if (advice === CLOSE_ADVICE.RECONNECT_BACKOFF || !wasConnected) {
            this._attempt += 1;
            const max = this._maxAttempts();
            if (this._attempt > max) {
                const error = ended.error && !ended.error.temporary
                    ? ended.error
                    : new ConnectionError("gave_up", `Could not reconnect after ${max} attempt${max === 1 ? "" : "s"}: ${ended.reason}.`, {
                        hint: "Check that the gateway is running, then press Reconnect.",
                        closeCode: ended.closeCode ?? null,
                    });
                this._giveUp(ended, error);
                return;
            }
            delay = jittered(config, backoffDelay(config, this._attempt));
        }
        if (ended.auth && ended.error)
            this._notifyError(ended.error, "Sign-in failed");
        this._setState(ConnectionState.RECONNECTING, {
            attempt: this._attempt,
            max_attempts: this._maxAttempts(),
            delay,
            next_attempt_at: Date.now() + delay,
            close_code: ended.closeCode ?? null,
            reason: ended.reason,
            error: ended.error || null,
        });
        this._timer = setTimeout(() => {
            this._timer = null;
            void this._open();
        }, delay);
    }
    _giveUp(ended, error) {
        this._wanted = false;
        this._lastError = error;
        this._setState(ConnectionState.CLOSED, {
            close_code: ended.closeCode ?? null,
            reason: ended.reason,
            error,
        });
        const title = error instanceof AuthError ? "Sign-in failed" : "Connection failed";
        this._notifyError(error, title);
        this._dropUnconfirmed(error);
        this._settleWaiters(error);
    }
    /** Subscriptions never confirmed end with `error` (their promises must not hang); those
     * confirmed before stay, to be sent again by the next connect(). */
    _dropUnconfirmed(error) {
        let changed = false;
        for (const [key, sub] of [...this._subscriptions]) {
            if (sub._resolved)
                continue;
            this._subscriptions.delete(key);
            sub._end(error);
            changed = true;
        }
        if (changed)
            this._emit("subscriptions", this.subscriptionList());
    }
    /** Back online or visible again: skip the rest of the backoff wait, try now. */
    _wake() {
        if (this._state === ConnectionState.RECONNECTING && this._timer !== null) {
            this._clearTimer();
            void this._open();
        }
        else if (this._state === ConnectionState.CLOSED && this._lastError?.code === "gave_up") {
            this.connect().catch(() => { });
        }
    }
    _abort(ws, reason) {
        if (this._ws !== ws)
            return;
        try {
            ws.close(CLIENT_ABORT, reason.slice(0, 120));
        }
        catch {
            // already closed
        }
        // Browsers may take long to report the close of a dead link; do not wait for them.
        this._closedWithoutServer(ws, reason);
    }
    _closedWithoutServer(ws, reason) {
        if (this._ws !== ws)
            return;
        const wasConnected = this._sessions.get(ws)?.welcomed ?? false;
        this._detach(ws);
        this._endSession();
        this._ended({
            advice: CLOSE_ADVICE.RECONNECT_BACKOFF,
            reason,
            closeCode: ABNORMAL_CLOSURE,
            wasConnected,
            explanation: `The connection went silent (${reason}).`,
        });
    }
    _detach(ws) {
        ws.onmessage = ws.onclose = ws.onerror = null;
        const session = this._sessions.get(ws);
        if (session)
            session.ended = true;
        if (this._ws === ws)
            this._ws = null;
    }
    _endSession() {
        if (this._pinger !== null)
            clearInterval(this._pinger);
        if (this._watchdog !== null)
            clearTimeout(this._watchdog);
        this._pinger = this._watchdog = null;
        this._stats.connected_since = null;
        let changed = false;
        for (const sub of this._subscriptions.values()) {
            changed = changed || sub.confirmed;
            sub._confirmed = false; // live again once re-confirmed on the next connection
        }
        if (changed)
            this._emit("subscriptions", this.subscriptionList());
        for (const [id, pending] of this._pending) {
            clearTimeout(pending.timer);
            pending.reject(new SessionLost(`request ${id}: connection lost`));
        }
        this._pending.clear();
    }
    _clearTimer() {
        if (this._timer !== null)
            clearTimeout(this._timer);
        this._timer = null;
    }
    _maxAttempts() {
        const max = this._config.max_reconnect_attempts;
        return max === null || max === undefined ? Infinity : max;
    }
    // --- heartbeats -------------------------------------------------------------------------
    _armWatchdog(ws, serverIntervalSeconds) {
        const session = this._sessions.get(ws);
        if (!session)
            return;
        const interval = (serverIntervalSeconds || 30) * 1000;
        session.silence = this._config.heartbeat_timeout || 2 * interval;
        this._feedWatchdog(ws);
    }
    _feedWatchdog(ws) {
        const silence = this._sessions.get(ws)?.silence;
        if (!silence)
            return;
        if (this._watchdog !== null)
            clearTimeout(this._watchdog);
        this._watchdog = setTimeout(() => this._abort(ws, `nothing received for ${Math.round(silence / 1000)} s`), silence);
    }
    _startPinger(ws) {
        if (this._pinger !== null)
            clearInterval(this._pinger);
        this._pinger = null;
        const every = this._config.heartbeat_interval;
        if (!every)
            return;
        this.ping().catch(() => { });
        this._pinger = setInterval(() => {
            if (this._ws === ws)
                this.ping().catch(() => { });
        }, every);
    }
    // --- sending ----------------------------------------------------------------------------
    _send(ws, body) {
        if (!ws || ws.readyState !== WebSocket.OPEN)
            return false;
        ws.send(JSON.stringify(body));
        return true;
    }
    _request(body, ws = this._ws, onReply) {
        return new Promise((resolve, reject) => {
            if (!ws || ws.readyState !== WebSocket.OPEN || this._sessions.get(ws)?.ended) {
                reject(new SessionLost("not connected"));
                return;
            }
            this._ids += 1;
            const id = `b${this._ids}`;
            const timer = setTimeout(() => {
                this._pending.delete(id);
                reject(new ConnectionError("request_timeout", `No answer to '${body.type}' in time.`, {
                    hint: "The gateway may be overloaded; try again.",
                    temporary: true,
                }));
            }, this._config.request_timeout);
            this._pending.set(id, { onReply, resolve, reject, timer });
            this._send(ws, { ...body, id });
        });
    }
    // --- events -----------------------------------------------------------------------------
    _setState(state, detail = {}) {
        this._state = state;
        this._stateDetail = { state, at: Date.now(), ...detail };
        this._emit("state", this._stateDetail);
    }
    _settleWaiters(error) {
        const waiters = this._connectWaiters;
        this._connectWaiters = [];
        for (const waiter of waiters) {
            if (error)
                waiter.reject(error);
            else
                waiter.resolve();
        }
    }
    _notify(level, title, message, { suggestion = null, code = null } = {}) {
        this._notes += 1;
        const note = {
            id: this._notes,
            level,
            title,
            message,
            suggestion,
            code,
            at: Date.now(),
        };
        this._emit("notification", note);
        return note;
    }
    _notifyError(error, title) {
        return this._notify("error", title, error.message, {
            suggestion: error.hint || null,
            code: error.code || null,
        });
    }
    _emit(name, detail) {
        this.dispatchEvent(new CustomEvent(name, { detail }));
    }
}
/** The seed's shared instance, for pages with one connection. */
export const webSocketManager = new WebSocketManager();
