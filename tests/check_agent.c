/* Check suite for the agent step (plugins/agent): a fake agent
 * (tests/fixtures/fake_agent.sh) answers as text and as JSON (result and
 * usage picked by JSON pointers), fails, sleeps past its timeout, answers
 * bad JSON, too much, or without end; argv, env and cwd reach it without a
 * shell; the prompt comes inline or from a file; definitions are checked. */
#include "build-config.h"

#include <sys/stat.h>
#include <time.h>

#include "plugin_harness.h"

/* The fake agent's path, read through $(srcdir). */
static char *fake_agent(void)
{
    const char *src = getenv("top_srcdir");
    return xasprintf("%s/tests/fixtures/fake_agent.sh", src && *src ? src : ".");
}

/* A one-step sequential pattern `name` whose step runs the fake agent in
 * `mode` with `params` added; free() it. */
static char *agent_pattern(const char *name, const char *mode, const char *params)
{
    char *fa = fake_agent();
    char *s = xasprintf("{ name = \"%s\"; type = \"sequential\"; params = { steps = ( "
                        "{ name = \"s\"; step = \"agent\"; params = { "
                        "argv = [\"/bin/sh\", \"%s\", \"%s\"]; %s }; } ); }; }",
                        name, fa, mode, params);
    free(fa);
    return s;
}

/* Opens the harness on `n` patterns given as (name, mode, params) triples. */
static void open_agents(harness *h, int ok, size_t n, const char *const (*defs)[3])
{
    strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < n; i++) {
        char *p = agent_pattern(defs[i][0], defs[i][1], defs[i][2]);
        sb_printf(&sb, "%s%s\n", i ? "," : "", p);
        free(p);
    }
    if (ok)
        h_open_ok(h, 1, sb.buf);
    else
        h_open(h, 1, sb.buf);
    sb_free(&sb);
}

static int run_ctx(harness *h, const char *name, record **r, char **msg)
{
    ndf_context *c = context_new("payments.eu", "coder", 2);
    context_set_attr(c, "user", value_new_string("user", "ada"));
    int rc = h_run(h, name, c, 0, r, msg);
    context_free(c);
    return rc;
}

/* The step's log lines (node_log) in the record. */
static const char *step_log(record *r, const char *path)
{
    ndf_exec *n = h_find(r->root, path);
    ck_assert_msg(n != NULL, "no node '%s'", path);
    return n->out[REC_LOG].buf ? n->out[REC_LOG].buf : "";
}

#define ck_assert_has(text, needle)                                                                \
    ck_assert_msg(strstr((text), (needle)) != NULL, "'%s' not in:\n%s", (needle), (text))

START_TEST(test_text_answer)
{
    static const char *const defs[][3] = {
        {"text", "echo", "prompt = \"Deploy for ${attr.user} in ${domain}, $$5\";"},
        {"unknown", "echo", "prompt = \"Hello ${attr.nobody}\";"},
    };
    harness h;
    open_agents(&h, 1, 2, defs);
    record *r;
    char *msg;
    ck_assert_msg(run_ctx(&h, "text", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_state(r, "text/s", NDF_STATE_COMPLETED);
    const char *log = step_log(r, "text/s");
    /* The prompt reached stdin expanded; the trailing newlines are cut. */
    ck_assert_has(log, "result: answer to: Deploy for ada in payments.eu, $5\n");
    ck_assert_has(log, "answered in");
    record_unref(r);
    free(msg);

    /* A prompt naming what the context lacks is a validation error (not
     * counted against the pattern). */
    ck_assert_int_eq(run_ctx(&h, "unknown", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_has(h_message(r, "unknown/s"), "unknown variable ${attr.nobody}");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_json_answer)
{
    static const char *const defs[][3] = {
        {"text", "json",
         "prompt = \"q\"; format = \"json\"; result = \"/result/text\"; "
         "usage = \"/usage\";"},
        {"array", "json", "prompt = \"q\"; format = \"json\"; result = \"/result/n\";"},
        {"item", "json", "prompt = \"q\"; format = \"json\"; result = \"/result/n/1\";"},
        {"escaped", "json", "prompt = \"q\"; format = \"json\"; result = \"/a~1b~0c\";"},
        {"whole", "json", "prompt = \"q\"; format = \"json\";"},
        {"missing", "json", "prompt = \"q\"; format = \"json\"; result = \"/result/nope\";"},
        {"past", "json", "prompt = \"q\"; format = \"json\"; result = \"/result/n/2\";"},
        {"nousage", "json", "prompt = \"q\"; format = \"json\"; usage = \"/cost\";"},
    };
    harness h;
    open_agents(&h, 1, sizeof defs / sizeof *defs, defs);
    record *r;
    char *msg;
    ck_assert_msg(run_ctx(&h, "text", &r, &msg) == NDF_OK, "%s", msg);
    const char *log = step_log(r, "text/s");
    ck_assert_has(log, "result: answer to: q\n");
    ck_assert_has(log, "usage: {\"input_tokens\":12,\"cost_usd\":0.5}");
    /* The answer is the step's result, the usage numbers its metrics. */
    ndf_exec *n = h_find(r->root, "text/s");
    ck_assert_str_eq(n->result, "answer to: q");
    ck_assert_uint_eq(n->nmetrics, 2);
    ck_assert_str_eq(n->metrics[0].name, "input_tokens");
    ck_assert_double_eq(n->metrics[0].value, 12);
    ck_assert_str_eq(n->metrics[1].name, "cost_usd");
    ck_assert_double_eq(n->metrics[1].value, 0.5);
    record_unref(r);
    free(msg);

    static const char *const want[][2] = {
        {"array", "result: [1,2]\n"},
        {"item", "result: 2\n"},
        {"escaped", "result: 7\n"},
        {"whole", "result: {\"result\":{\"text\":\"answer to: q\",\"n\":[1,2]},\"a/b~c\":7,"},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        ck_assert_msg(run_ctx(&h, want[i][0], &r, &msg) == NDF_OK, "%s: %s", want[i][0], msg);
        char *path = xasprintf("%s/s", want[i][0]);
        ck_assert_has(step_log(r, path), want[i][1]);
        free(path);
        record_unref(r);
        free(msg);
    }

    ck_assert_int_eq(run_ctx(&h, "missing", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_state(r, "missing/s", NDF_STATE_FAILED);
    ck_assert_has(h_message(r, "missing/s"), "the answer has no value at '/result/nope'");
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_ctx(&h, "past", &r, &msg), NDF_ERR_EXECUTION);
    record_unref(r);
    free(msg);
    /* Usage figures are optional: a warning, not a failure. */
    ck_assert_msg(run_ctx(&h, "nousage", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_has(step_log(r, "nousage/s"), "no usage figures at '/cost'");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_agent_fails)
{
    static const char *const defs[][3] = {
        {"fail", "fail", "prompt = \"q\";"},
        {"missing", "echo", "prompt = \"q\";"},
        {"relative", "echo", "prompt = \"q\";"},
    };
    harness h;
    /* Two of them run programs that are not there. */
    strbuf sb;
    sb_init(&sb);
    char *p = agent_pattern(defs[0][0], defs[0][1], defs[0][2]);
    sb_printf(&sb, "%s,\n", p);
    free(p);
    sb_puts(&sb, "{ name = \"missing\"; type = \"sequential\"; params = { steps = ( { name = "
                 "\"s\"; step = \"agent\"; params = { argv = [\"no-such-agent-ndf\"]; "
                 "prompt = \"q\"; }; } ); }; },\n"
                 "{ name = \"relative\"; type = \"sequential\"; params = { steps = ( { name = "
                 "\"s\"; step = \"agent\"; params = { argv = [\"./agent\"]; cwd = \"@DIR@\"; "
                 "prompt = \"q\"; }; } ); }; }");
    h_open_ok(&h, 1, sb.buf);
    sb_free(&sb);
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "fail", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_state(r, "fail/s", NDF_STATE_FAILED);
    ck_assert_has(h_message(r, "fail/s"), "agent '/bin/sh' failed: exited with status 3");
    ndf_exec *n = h_find(r->root, "s");
    ck_assert_msg(n->out[REC_STDERR].buf && strstr(n->out[REC_STDERR].buf, "model overloaded"),
                  "the agent's stderr is not in the record");
    record_unref(r);
    free(msg);

    ck_assert_int_eq(run_ctx(&h, "missing", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_has(h_message(r, "missing/s"), "cannot run 'no-such-agent-ndf': not found in PATH");
    record_unref(r);
    free(msg);
    /* A relative program name is found from the working directory. */
    ck_assert_int_eq(run_ctx(&h, "relative", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_has(h_message(r, "relative/s"), "cannot run './agent': no such file");
    record_unref(r);
    free(msg);
    char *agent = h_path(&h, "agent");
    h_write(agent, "#!/bin/sh\necho relative ok\n");
    ck_assert_int_eq(chmod(agent, 0700), 0);
    ck_assert_msg(run_ctx(&h, "relative", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_has(step_log(r, "relative/s"), "result: relative ok\n");
    record_unref(r);
    free(msg);
    free(agent);
    h_close(&h);
}
END_TEST

START_TEST(test_timeout)
{
    static const char *const defs[][3] = {
        {"slow", "sleep", "prompt = \"q\"; timeout = 0.3;"},
    };
    harness h;
    open_agents(&h, 1, 1, defs);
    record *r;
    char *msg;
    double t0 = now_mono();
    ck_assert_int_eq(run_ctx(&h, "slow", &r, &msg), NDF_ERR_TIMEOUT);
    ck_assert_msg(now_mono() - t0 < 5, "took %.1f s", now_mono() - t0);
    ck_assert_state(r, "slow/s", NDF_STATE_TIMED_OUT);
    ck_assert_has(h_message(r, "slow/s"), "agent '/bin/sh' did not answer in time");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_bad_json)
{
    static const char *const defs[][3] = {
        {"bad", "badjson", "prompt = \"q\"; format = \"json\";"},
        {"empty", "env", "prompt = \"q\"; format = \"json\";"},
        {"asText", "badjson", "prompt = \"q\";"},
    };
    harness h;
    open_agents(&h, 1, 3, defs);
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "bad", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_state(r, "bad/s", NDF_STATE_FAILED);
    ck_assert_has(h_message(r, "bad/s"), "the answer is not valid JSON (at byte");
    record_unref(r);
    free(msg);
    /* "env" prints " payments.eu DIR": the first byte is a space, the
     * second is where JSON fails. */
    ck_assert_int_eq(run_ctx(&h, "empty", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_has(h_message(r, "empty/s"), "not valid JSON (at byte 1 of");
    record_unref(r);
    free(msg);
    /* The same answer as text is fine. */
    ck_assert_msg(run_ctx(&h, "asText", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_has(step_log(r, "asText/s"), "result: {\"result\": \"unterminated");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_big_output)
{
    static const char *const defs[][3] = {
        {"big", "big", "prompt = \"q\"; output_limit = 1000;"},
        {"fits", "big", "prompt = \"q\"; output_limit = 202000;"},
        {"flood", "flood", "prompt = \"q\"; output_limit = 100000; timeout = 30.0;"},
    };
    harness h;
    open_agents(&h, 1, 3, defs);
    record *r;
    char *msg;
    ck_assert_int_eq(run_ctx(&h, "big", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_has(h_message(r, "big/s"),
                  "the answer is longer than output_limit (1000 bytes); the agent was stopped");
    record_unref(r);
    free(msg);
    /* Exactly at the limit is accepted: 2,000 lines of 101 bytes. */
    ck_assert_msg(run_ctx(&h, "fits", &r, &msg) == NDF_OK, "%.300s", msg);
    record_unref(r);
    free(msg);
    /* An agent that never stops is stopped at the limit, long before its
     * timeout. */
    double t0 = now_mono();
    ck_assert_int_eq(run_ctx(&h, "flood", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_msg(now_mono() - t0 < 10, "took %.1f s", now_mono() - t0);
    ck_assert_has(h_message(r, "flood/s"), "longer than output_limit (100000 bytes)");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

/* A later step reads the agent's answer as ${steps.NAME.result}; before the
 * agent has answered, the same variable is a validation error. */
START_TEST(test_result_for_later_steps)
{
    char *fa = fake_agent();
    char *defs = xasprintf(
        "{ name = \"chain\"; type = \"sequential\"; params = { steps = ( "
        "{ name = \"ask\"; step = \"agent\"; params = { argv = [\"/bin/sh\", \"%s\", "
        "\"echo\"]; prompt = \"q\"; }; }, "
        "{ name = \"use\"; step = \"agent\"; params = { argv = [\"/bin/sh\", \"%s\", "
        "\"echo\"]; prompt = \"again: ${steps.ask.result}\"; }; } ); }; },\n"
        "{ name = \"early\"; type = \"sequential\"; params = { steps = ( "
        "{ name = \"use\"; step = \"agent\"; params = { argv = [\"/bin/sh\", \"%s\", "
        "\"echo\"]; prompt = \"${steps.ask.result}\"; }; } ); }; }",
        fa, fa, fa);
    harness h;
    h_open_ok(&h, 1, defs);
    record *r;
    char *msg;
    ck_assert_msg(run_ctx(&h, "chain", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_str_eq(h_find(r->root, "chain/use")->result, "answer to: again: answer to: q");
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_ctx(&h, "early", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_has(h_message(r, "early/use"), "${steps.ask.result}");
    ck_assert_has(h_message(r, "early/use"), "has a result");
    record_unref(r);
    free(msg);
    h_close(&h);
    free(defs);
    free(fa);
}
END_TEST

START_TEST(test_argv_env_cwd)
{
    static const char *const defs[][3] = {
        {"env", "env",
         "prompt = \"q\"; env = { AGENT_MODEL = \"m-${priority}\"; }; "
         "cwd = \"@DIR@\";"},
    };
    harness h;
    strbuf sb;
    sb_init(&sb);
    char *p = agent_pattern(defs[0][0], defs[0][1], defs[0][2]);
    char *fa = fake_agent();
    /* Arguments with spaces and shell syntax arrive as they are. */
    sb_printf(
        &sb,
        "%s,\n{ name = \"args\"; type = \"sequential\"; params = { steps = ( { name = "
        "\"s\"; step = \"agent\"; params = { argv = [\"/bin/sh\", \"%s\", \"args\", "
        "\"a b\", \"${attr.user}\", \"$$(echo pwned > @DIR@/x); *\", \"\"]; prompt = \"q\"; }; } "
        "); }; }",
        p, fa);
    free(p);
    free(fa);
    h_open_ok(&h, 1, sb.buf);
    sb_free(&sb);
    record *r;
    char *msg;
    ck_assert_msg(run_ctx(&h, "env", &r, &msg) == NDF_OK, "%s", msg);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(h.dir, real));
    char *want = xasprintf("result: m-2 payments.eu %s\n", real);
    ck_assert_has(step_log(r, "env/s"), want);
    free(want);
    record_unref(r);
    free(msg);
    ck_assert_msg(run_ctx(&h, "args", &r, &msg) == NDF_OK, "%s", msg);
    want = xasprintf("result: [a b][ada][$(echo pwned > %s/x); *][]\n", h.dir);
    ck_assert_has(step_log(r, "args/s"), want);
    char *x = h_file(&h, "x"); /* no shell ran the argument */
    ck_assert_str_eq(x, "");
    free(want);
    free(x);
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_prompt_file)
{
    char dir[] = "/tmp/ndf-check-agent.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *file = xasprintf("%s/prompt.txt", dir);
    h_write(file, "Review the change of ${attr.user}\nin ${domain}.");
    char *params = xasprintf("prompt_file = \"%s\";", file);
    const char *const defs[][3] = {
        {"file", "echo", params},
        {"relative", "echo", "prompt_file = \"no-such-prompt.txt\";"},
        {"dir", "echo", "prompt_file = \"/tmp\";"},
    };
    harness h;
    open_agents(&h, 0, 3, defs);
    ck_assert_uint_eq(h.nerrors, 2);
    /* A relative name is read beside the file that defines it. */
    char *want = xasprintf("cannot read prompt_file '%s/no-such-prompt.txt'", h.dir);
    ck_assert_has(h_errors(&h), want);
    free(want);
    ck_assert_has(h_errors(&h), "prompt_file '/tmp' is not a regular file");
    record *r;
    char *msg;
    ck_assert_msg(run_ctx(&h, "file", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_has(step_log(r, "file/s"), "result: answer to: Review the change of ada\n"
                                         "in payments.eu.\n");
    record_unref(r);
    free(msg);
    h_close(&h);
    unlink(file);
    rmdir(dir);
    free(file);
    free(params);
}
END_TEST

START_TEST(test_definition_errors)
{
    static const char *const defs[][3] = {
        {"both", "echo", "prompt = \"q\"; prompt_file = \"p\";"},
        {"neither", "echo", ""},
        {"format", "echo", "prompt = \"q\"; format = \"xml\";"},
        {"textptr", "echo", "prompt = \"q\"; result = \"/a\";"},
        {"badptr", "echo", "prompt = \"q\"; format = \"json\"; result = \"a/b\";"},
        {"tilde", "echo", "prompt = \"q\"; format = \"json\"; usage = \"/a~2\";"},
        {"envname", "echo", "prompt = \"q\"; env = { A-B = \"x\"; };"},
        {"envtype", "echo", "prompt = \"q\"; env = { A = 1; };"},
        {"limit", "echo", "prompt = \"q\"; output_limit = 0;"},
    };
    harness h;
    open_agents(&h, 0, sizeof defs / sizeof *defs, defs);
    const char *e = h_errors(&h);
    ck_assert_has(e, "give either 'prompt' or 'prompt_file', not both");
    ck_assert_has(e, "give either 'prompt' or 'prompt_file'\n");
    ck_assert_has(e, "unknown format 'xml' (text or json)");
    ck_assert_has(e, "'result' picks from a JSON answer: it needs format = \"json\"");
    ck_assert_has(e, "'result' = \"a/b\" is not a JSON pointer");
    ck_assert_has(e, "'usage' = \"/a~2\" is not a JSON pointer");
    ck_assert_has(e, "'env.A-B' is not a valid environment variable name");
    ck_assert_has(e, "'env.A' must be a string");
    ck_assert_has(e, "output_limit");
    ck_assert_msg(h.nerrors == sizeof defs / sizeof *defs, "%zu errors:\n%s", h.nerrors, e);
    h_close(&h);
}
END_TEST

/* ---- agents configured in ndf.conf ---- */

/* The agents section the tests below run with (@FA@: the fake agent). */
static void set_agents(void)
{
    static char *conf;
    free(conf);
    char *fa = fake_agent();
    conf = xasprintf(
        "agents = {\n"
        "  plain = { argv = [\"/bin/sh\", \"%s\", \"echo\"]; agent_types = [\"coder\"]; };\n"
        "  rich = { argv = [\"/bin/sh\", \"%s\", \"json\"]; format = \"json\";\n"
        "           result = \"/result/text\"; usage = \"/usage\";\n"
        "           agent_types = [\"reviewer\"]; };\n"
        "  slow = { argv = [\"/bin/sh\", \"%s\", \"sleep\"]; timeout = 0.3; };\n"
        "  chatty = { argv = [\"/bin/sh\", \"%s\", \"big\"]; output_limit = 1000; };\n"
        "  envy = { argv = [\"/bin/sh\", \"%s\", \"env\"]; cwd = \"/\";\n"
        "           env = { AGENT_MODEL = \"from-agent\"; OTHER = \"x\"; }; };\n"
        "};\n",
        fa, fa, fa, fa, fa);
    free(fa);
    h_conf_extra = conf;
}

/* A one-step pattern whose agent step has `params` (no argv of its own
 * unless given), with pattern keys `extra`; free() it. */
static char *conf_pattern(const char *name, const char *extra, const char *params)
{
    return xasprintf("{ name = \"%s\"; type = \"sequential\"; %s params = { steps = ( "
                     "{ name = \"s\"; step = \"agent\"; params = { %s }; } ); }; }",
                     name, extra, params);
}

static int run_type(harness *h, const char *name, const char *type, record **r, char **msg)
{
    ndf_context *c = context_new("payments.eu", type, 2);
    int rc = h_run(h, name, c, 0, r, msg);
    context_free(c);
    return rc;
}

START_TEST(test_configured_agents)
{
    set_agents();
    const char *const defs[][3] = {
        /* an agent by name, its format and pointers with it */
        {"named", "", "agent = \"rich\"; prompt = \"q\";"},
        /* the agent chosen by the context's agent type */
        {"mapped", "agent_types = [\"coder\", \"reviewer\"];", "prompt = \"q\";"},
        {"anytype", "", "prompt = \"q\";"},
        /* limits from the agent's definition */
        {"slow", "", "agent = \"slow\"; prompt = \"q\";"},
        {"chatty", "", "agent = \"chatty\"; prompt = \"q\";"},
        /* what the step sets wins; env is merged member by member */
        {"override", "",
         "agent = \"envy\"; prompt = \"q\"; cwd = \"@DIR@\"; "
         "env = { AGENT_MODEL = \"from-step\"; };"},
        {"ownargv", "",
         "agent = \"slow\"; argv = [\"/bin/echo\", \"mine\"]; timeout = 30.0; prompt = \"q\";"},
    };
    strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++) {
        char *p = conf_pattern(defs[i][0], defs[i][1], defs[i][2]);
        sb_printf(&sb, "%s%s\n", i ? "," : "", p);
        free(p);
    }
    harness h;
    h_open_ok(&h, 1, sb.buf);
    sb_free(&sb);
    h_conf_extra = NULL;
    record *r;
    char *msg;

    ck_assert_msg(run_type(&h, "named", "", &r, &msg) == NDF_OK, "%s", msg);
    ndf_exec *n = h_find(r->root, "named/s");
    ck_assert_str_eq(n->result, "answer to: q");
    ck_assert_uint_eq(n->nmetrics, 2);
    ck_assert_str_eq(n->metrics[0].name, "input_tokens");
    record_unref(r);
    free(msg);

    /* coder: the plain agent (text); reviewer: the rich one (JSON) */
    ck_assert_msg(run_type(&h, "mapped", "coder", &r, &msg) == NDF_OK, "%s", msg);
    n = h_find(r->root, "mapped/s");
    ck_assert_str_eq(n->result, "answer to: q");
    ck_assert_uint_eq(n->nmetrics, 0);
    ck_assert_has(step_log(r, "mapped/s"), "agent 'plain' serves agent type 'coder'");
    record_unref(r);
    free(msg);
    ck_assert_msg(run_type(&h, "mapped", "reviewer", &r, &msg) == NDF_OK, "%s", msg);
    n = h_find(r->root, "mapped/s");
    ck_assert_str_eq(n->result, "answer to: q");
    ck_assert_uint_eq(n->nmetrics, 2);
    ck_assert_has(step_log(r, "mapped/s"), "agent 'rich' serves agent type 'reviewer'");
    record_unref(r);
    free(msg);
    /* a type no agent serves, or none: not the pattern's failure */
    ck_assert_int_eq(run_type(&h, "anytype", "tester", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_has(h_message(r, "anytype/s"),
                  "no agent of ndf.conf serves agent type 'tester' (they serve: coder, reviewer)");
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_type(&h, "anytype", "", &r, &msg), NDF_ERR_VALIDATION);
    ck_assert_has(h_message(r, "anytype/s"), "the context has no agent type");
    record_unref(r);
    free(msg);

    ck_assert_int_eq(run_type(&h, "slow", "", &r, &msg), NDF_ERR_TIMEOUT);
    ck_assert_has(h_message(r, "slow/s"), "did not answer in time");
    record_unref(r);
    free(msg);
    ck_assert_int_eq(run_type(&h, "chatty", "", &r, &msg), NDF_ERR_EXECUTION);
    ck_assert_has(h_message(r, "chatty/s"), "longer than output_limit (1000 bytes)");
    record_unref(r);
    free(msg);

    ck_assert_msg(run_type(&h, "override", "", &r, &msg) == NDF_OK, "%s", msg);
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(h.dir, real));
    char *want = xasprintf("from-step payments.eu %s", real);
    ck_assert_str_eq(h_find(r->root, "override/s")->result, want);
    free(want);
    record_unref(r);
    free(msg);
    ck_assert_msg(run_type(&h, "ownargv", "", &r, &msg) == NDF_OK, "%s", msg);
    ck_assert_str_eq(h_find(r->root, "ownargv/s")->result, "mine");
    record_unref(r);
    free(msg);
    h_close(&h);
}
END_TEST

START_TEST(test_configured_agent_errors)
{
    set_agents();
    const char *const defs[][3] = {
        {"unknown", "", "agent = \"nope\"; prompt = \"q\";"},
        {"unserved", "agent_types = [\"coder\", \"tester\"];", "prompt = \"q\";"},
        {"filled", "", "agent_types = { coder = { argv = [\"x\"]; }; }; prompt = \"q\";"},
        /* the agent's settings are checked against the step's schema,
         * with the step's own keys: rich's pointers need its format */
        {"clash", "", "agent = \"rich\"; format = \"text\"; prompt = \"q\";"},
        {"fine", "agent_types = [\"coder\"];", "prompt = \"q\";"},
    };
    strbuf sb;
    sb_init(&sb);
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++) {
        char *p = conf_pattern(defs[i][0], defs[i][1], defs[i][2]);
        sb_printf(&sb, "%s%s\n", i ? "," : "", p);
        free(p);
    }
    harness h;
    h_open(&h, 1, sb.buf);
    sb_free(&sb);
    h_conf_extra = NULL;
    const char *e = h_errors(&h);
    ck_assert_has(e, "ndf.conf:15: step 'agent': unknown agent 'nope' (configured: plain, rich, "
                     "slow, chatty, envy)");
    ck_assert_has(e, "pattern 'unserved': agent type 'tester' is served by no agent");
    ck_assert_has(e, "'agent_types' is filled in from ndf.conf's agents");
    ck_assert_has(e, "'result' picks from a JSON answer");
    ck_assert_msg(h.nerrors == 4, "%zu errors:\n%s", h.nerrors, e);
    record *r;
    char *msg;
    ck_assert_msg(run_type(&h, "fine", "coder", &r, &msg) == NDF_OK, "%s", msg);
    record_unref(r);
    free(msg);
    h_close(&h);

    /* no agents configured at all: a step without argv cannot run */
    char *p = conf_pattern("bare", "", "prompt = \"q\";");
    h_open(&h, 1, p);
    free(p);
    ck_assert_has(h_errors(&h), "step 'agent': no agent to run: set 'agent'");
    ck_assert_uint_eq(h.nerrors, 1);
    h_close(&h);
}
END_TEST

static Suite *agent_suite(void)
{
    Suite *s = suite_create("agent");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_text_answer);
    tcase_add_test(tc, test_json_answer);
    tcase_add_test(tc, test_agent_fails);
    tcase_add_test(tc, test_timeout);
    tcase_add_test(tc, test_bad_json);
    tcase_add_test(tc, test_big_output);
    tcase_add_test(tc, test_result_for_later_steps);
    tcase_add_test(tc, test_argv_env_cwd);
    tcase_add_test(tc, test_prompt_file);
    tcase_add_test(tc, test_definition_errors);
    tcase_add_test(tc, test_configured_agents);
    tcase_add_test(tc, test_configured_agent_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(agent_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
