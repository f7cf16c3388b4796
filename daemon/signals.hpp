// daemon/signals.hpp
// Signals are blocked in every thread and taken by one thread with sigwait (no async-signal-safety traps).
#pragma once

#include <functional>
#include <thread>

namespace tenancyd {

// Blocks SIGTERM, SIGINT, SIGHUP and SIGPIPE in the calling thread; call before starting any other thread.
void BlockSignals();

// Starts the detached signal thread: SIGHUP -> on_reload; first SIGTERM/SIGINT -> on_stop (drain);
// a second one exits at once with status 1 (PgBouncer's two-stage shutdown).
void StartSignalThread(std::function<void()> on_reload, std::function<void()> on_stop);

} // namespace tenancyd
