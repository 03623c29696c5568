// The wire's shapes that the generated contract does not cover: server frames and their
// payloads, snapshots, the welcome, status() answers, error code types. They mirror
// oddstream.shared.protocol and oddstream.shared.events. Types only: nothing here exists at
// run time.
export {};
