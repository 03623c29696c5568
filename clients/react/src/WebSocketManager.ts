/**
 * The seed's `useWebSocketStore`: a Zustand hook over the store of the nearest
 * `<WebSocketProvider>`, or of the page's default store, which drives the browser client's
 * shared `webSocketManager`.
 *
 *   const { subscribe, unsubscribe, subscriptions } = useWebSocketStore();
 *   const connected = useWebSocketStore((s) => s.connected);   // re-renders on that only
 *   useWebSocketStore.getState().setConfig({ base_url: "wss://odds.example.com" });
 *
 * The static methods (`getState`, `setState`, `subscribe`, `getInitialState`) are the default
 * store's, as with any Zustand hook; inside a provider, use `useWebSocketStoreApi()`.
 */

import { createContext, createElement, useContext, useState, type ReactNode } from "react";
import { useStore } from "zustand";
import { webSocketManager } from "@oddstream/client";
import {
  createWebSocketStore,
  type StoreConfig,
  type WebSocketState,
  type WebSocketStoreApi,
} from "./store.js";

/** The page's default store, on the browser client's shared `webSocketManager`. Creating it
 * opens nothing: only connect() does. */
export const defaultWebSocketStore: WebSocketStoreApi = createWebSocketStore({
  manager: webSocketManager,
});

const StoreContext = createContext<WebSocketStoreApi | null>(null);

export interface WebSocketProviderProps {
  /** The store for this subtree; by default one made once for this provider (with `config`). */
  store?: WebSocketStoreApi;
  /** Settings for the provider's own store (ignored with `store`). */
  config?: StoreConfig;
  children?: ReactNode;
}

/** Give a subtree its own store (its own connection): tests, or two gateways on one page. */
export function WebSocketProvider({ store, config, children }: WebSocketProviderProps) {
  const [own] = useState<WebSocketStoreApi | null>(() =>
    store ? null : createWebSocketStore(config ? { config } : {}),
  );
  return createElement(StoreContext.Provider, { value: store ?? own }, children);
}

/** The store the hooks in this subtree use. */
export function useWebSocketStoreApi(): WebSocketStoreApi {
  return useContext(StoreContext) ?? defaultWebSocketStore;
}

function selectAll(state: WebSocketState): WebSocketState {
  return state;
}

/** Read the store: all of it (re-rendering on every change), or what `selector` picks. */
function useWebSocketStoreHook(): WebSocketState;
function useWebSocketStoreHook<U>(selector: (state: WebSocketState) => U): U;
function useWebSocketStoreHook<U>(selector?: (state: WebSocketState) => U): U | WebSocketState {
  const api = useWebSocketStoreApi();
  return useStore(api, (selector ?? selectAll) as (state: WebSocketState) => U | WebSocketState);
}

/** The seed's store hook; see the module comment. */
export const useWebSocketStore: typeof useWebSocketStoreHook & WebSocketStoreApi = Object.assign(
  useWebSocketStoreHook,
  {
    getState: defaultWebSocketStore.getState,
    getInitialState: defaultWebSocketStore.getInitialState,
    setState: defaultWebSocketStore.setState,
    subscribe: defaultWebSocketStore.subscribe,
  },
);
