// The events a WebSocketManager emits (`ManagerEvents`) and their details: state changes,
// notifications for a UI, stats, and how subscriptions resumed after a reconnect.
export {};
