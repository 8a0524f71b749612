# cli: the ndf program.  Its command table, reentrant option parser and
# commands, the one layer that knows stdio and exit codes; everything else
# is in libndfcore.la.  Included by mk/core.mk.
bin_PROGRAMS += ndf
ndf_SOURCES = \
	host/cli/main.c \
	host/cli/commands.c host/cli/commands.h \
	host/cli/opt.c host/cli/opt.h \
	host/cli/ctxopt.c host/cli/ctxopt.h \
	host/cli/cmd_config.c \
	host/cli/cmd_patterns.c \
	host/cli/cmd_plugins.c \
	host/cli/cmd_run.c \
	host/cli/cmd_delegate.c \
	host/cli/cmd_storage.c \
	host/cli/cmd_history.c \
	host/cli/cmd_redrive.c \
	host/cli/cmd_rollback.c \
	host/cli/cmd_serve.c \
	host/cli/cmd_ctl.c \
	host/cli/plan.c host/cli/plan.h \
	host/cli/cmd_plan.c \
	host/cli/cmd_graph.c \
	host/cli/cmd_metrics.c \
	host/cli/cmd_teststep.c \
	host/cli/cmd_newplugin.c
ndf_CPPFLAGS = $(libndfcore_la_CPPFLAGS)
ndf_LDADD = libndfcore.la

# The option parser is tested on its own.
check_PROGRAMS += tests/check_opt
TESTS += tests/check_opt
tests_check_opt_SOURCES = tests/check_opt.c host/cli/opt.c host/cli/opt.h
tests_check_opt_CPPFLAGS = $(CORE_TEST_CFLAGS)
tests_check_opt_LDADD = $(CHECK_LIBS)

# ndf delegate: choice, fallbacks, explain, JSON, learning over runs.
TESTS += tests/shell/delegate.sh
EXTRA_DIST += tests/shell/delegate.sh
# Agents configured in ndf.conf; step results and usage kept in the store.
TESTS += tests/shell/agents.sh
EXTRA_DIST += tests/shell/agents.sh
# ndf ctl delegate (the socket verb) and "delegate" lines of ndf batch.
TESTS += tests/shell/delegate_serve.sh
EXTRA_DIST += tests/shell/delegate_serve.sh
# The delegation demo (conf/delegation) converges on the best pattern.
TESTS += tests/shell/delegate_demo.sh
EXTRA_DIST += tests/shell/delegate_demo.sh

# ndf plan, run --dry-run, graph; failure reasons; the timeout rule.
TESTS += tests/shell/plan.sh
EXTRA_DIST += tests/shell/plan.sh

# ndf metrics and ctl metrics (promtool), the textfile collector's file;
# the plan's check for batch and ctl run; the one error style.
TESTS += tests/shell/metrics.sh
EXTRA_DIST += tests/shell/metrics.sh

# What an operator reads when something is wrong: the one error style of
# many commands and of every ctl verb, one wording for what is not there,
# fallback causes, a report that creates nothing, bad definitions.
TESTS += tests/shell/diagnostics.sh
EXTRA_DIST += tests/shell/diagnostics.sh

# make demo, three times in a row.
TESTS += tests/shell/demo.sh
EXTRA_DIST += tests/shell/demo.sh

# Bash completion: commands, options, pattern names (configure.ac sets
# bashcompletiondir), and its test.
dist_bashcompletion_DATA = contrib/bash-completion/ndf
TESTS += tests/shell/completion.sh
EXTRA_DIST += tests/shell/completion.sh
