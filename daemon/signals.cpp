// daemon/signals.cpp
// SIGPIPE stays blocked for good so a client hanging up mid-response is an EPIPE, not a dead daemon.
#include "signals.hpp"

#include "log.hpp"

#include <csignal>
#include <pthread.h>
#include <unistd.h>

namespace tenancyd {

namespace {
sigset_t
HandledSet()
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	return set;
}
} // namespace

void
BlockSignals()
{
	sigset_t set = HandledSet();
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void
StartSignalThread(std::function<void()> on_reload, std::function<void()> on_stop)
{
	std::thread([on_reload, on_stop] {
		sigset_t set = HandledSet();
		bool stopping = false;
		for (;;) {
			int sig = 0;
			if (sigwait(&set, &sig) != 0)
				continue;
			if (sig == SIGHUP) {
				on_reload();
			} else if (!stopping) {
				stopping = true;
				Log(LogLevel::kInfo, "shutting down: draining in-flight requests", {{"signal", sig}});
				on_stop();
			} else {
				Log(LogLevel::kWarn, "second shutdown signal: exiting now", {{"signal", sig}});
				_exit(1);
			}
		}
	}).detach();
}

} // namespace tenancyd
