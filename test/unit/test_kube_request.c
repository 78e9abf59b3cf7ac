/* test_kube_request.c — URL building and escaping, retry classification,
 * Status parsing (real and synthesized). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kube_request.h"
#include "kube_status.h"

static void url_is(const struct kube_request *r, const char *want) {
  struct gpc_error err = {0};
  char *u = kube_request_url("https://k:6443/", r, &err);
  assert_non_null(u);
  assert_string_equal(u, want);
  free(u);
}

static void test_paths(void **state) {
  (void)state;
  url_is(&(struct kube_request){.verb = KUBE_LIST, .version = "v1", .resource = "nodes"},
         "https://k:6443/api/v1/nodes");
  url_is(&(struct kube_request){.verb = KUBE_GET,
                                .version = "v1",
                                .resource = "configmaps",
                                .namespace = "kube system",
                                .name = "a b?#"},
         "https://k:6443/api/v1/namespaces/kube%20system/configmaps/a%20b%3F%23");
  url_is(&(struct kube_request){.verb = KUBE_PATCH,
                                .group = "gpupolicy.dev",
                                .version = "v1alpha1",
                                .resource = "clustergpupolicies",
                                .name = "p1",
                                .subresource = "status"},
         "https://k:6443/apis/gpupolicy.dev/v1alpha1/clustergpupolicies/p1/status");
}

static void test_query(void **state) {
  (void)state;
  url_is(&(struct kube_request){.verb = KUBE_LIST,
                                .version = "v1",
                                .resource = "nodes",
                                .label_selector = "gpu in (a,b),!x",
                                .field_selector = "metadata.name=n1",
                                .limit = 500,
                                .continue_token = "eyJ2Ijoi+/="},
         "https://k:6443/api/v1/nodes?labelSelector=gpu%20in%20%28a%2Cb%29%2C%21x"
         "&fieldSelector=metadata.name%3Dn1&limit=500&continue=eyJ2Ijoi%2B%2F%3D");
  url_is(&(struct kube_request){.verb = KUBE_WATCH,
                                .group = "apps",
                                .version = "v1",
                                .resource = "daemonsets",
                                .namespace = "ns",
                                .resource_version = "1234",
                                .allow_watch_bookmarks = true,
                                .timeout_seconds = 412},
         "https://k:6443/apis/apps/v1/namespaces/ns/daemonsets?watch=true&resourceVersion=1234"
         "&allowWatchBookmarks=true&timeoutSeconds=412");
  url_is(&(struct kube_request){.verb = KUBE_PATCH,
                                .group = "apps",
                                .version = "v1",
                                .resource = "daemonsets",
                                .namespace = "ns",
                                .name = "d",
                                .patch_type = KUBE_PATCH_APPLY,
                                .field_manager = "gpu-policy-controller",
                                .force = true,
                                .dry_run = true},
         "https://k:6443/apis/apps/v1/namespaces/ns/daemonsets/d"
         "?fieldManager=gpu-policy-controller&force=true&dryRun=All");
  url_is(&(struct kube_request){.verb = KUBE_DELETE,
                                .version = "v1",
                                .resource = "pods",
                                .namespace = "n",
                                .name = "p",
                                .propagation_policy = "Foreground"},
         "https://k:6443/api/v1/namespaces/n/pods/p?propagationPolicy=Foreground");
  /* resourceVersion "0" is sent (it means "any"), empty selectors are not */
  url_is(&(struct kube_request){.verb = KUBE_LIST,
                                .version = "v1",
                                .resource = "pods",
                                .label_selector = "",
                                .resource_version = "0"},
         "https://k:6443/api/v1/pods?resourceVersion=0");
}

static void test_url_errors(void **state) {
  (void)state;
  struct gpc_error err = {0};
  assert_null(kube_request_url(
      "https://k", &(struct kube_request){.verb = KUBE_GET, .version = "v1", .resource = "nodes"},
      &err));
  assert_non_null(strstr(err.msg, "name is required"));
  /* a LIST without resource is the group version's discovery document ... */
  url_is(&(struct kube_request){.verb = KUBE_LIST, .version = "v1"}, "https://k:6443/api/v1");
  url_is(&(struct kube_request){.verb = KUBE_LIST, .group = "apps", .version = "v1"},
         "https://k:6443/apis/apps/v1");
  /* ... anything else without one is an error */
  assert_null(kube_request_url(
      "https://k", &(struct kube_request){.verb = KUBE_LIST, .version = "v1", .namespace = "ns"},
      &err));
  assert_non_null(strstr(err.msg, "resource"));
  assert_null(kube_request_url(
      "https://k", &(struct kube_request){.verb = KUBE_DELETE, .version = "v1", .name = "x"},
      &err));
  assert_non_null(strstr(err.msg, "resource"));
  assert_null(kube_request_url("https://k",
                               &(struct kube_request){.verb = KUBE_PATCH,
                                                      .version = "v1",
                                                      .resource = "nodes",
                                                      .name = "n",
                                                      .patch_type = KUBE_PATCH_APPLY},
                               &err));
  assert_non_null(strstr(err.msg, "fieldManager"));
  assert_null(kube_request_url(
      NULL, &(struct kube_request){.verb = KUBE_LIST, .version = "v1", .resource = "x"}, &err));
}

/* client-go's IsValidPathSegmentName: dot segments would be collapsed by
 * libcurl (configmaps/.. is the namespace), '/' and '%' change the path. */
static void test_dot_segments_refused(void **state) {
  (void)state;
  const char *bad[] = {".", "..", "a/b", "../x", "a%2Fb"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    struct gpc_error err = {0};
    struct kube_request byname = {.verb = KUBE_PATCH,
                                  .version = "v1",
                                  .resource = "configmaps",
                                  .namespace = "default",
                                  .name = bad[i],
                                  .body = "{}",
                                  .body_len = 2};
    assert_null(kube_request_url("https://k", &byname, &err));
    assert_int_equal(err.code, GPC_E_INVAL);
    assert_non_null(strstr(err.msg, "invalid name"));
    struct kube_request byns = {
        .verb = KUBE_LIST, .version = "v1", .resource = "pods", .namespace = bad[i]};
    assert_null(kube_request_url("https://k", &byns, &err));
    assert_non_null(strstr(err.msg, "invalid namespace"));
  }
  /* dots inside a name are fine */
  url_is(&(struct kube_request){.verb = KUBE_GET,
                                .version = "v1",
                                .resource = "configmaps",
                                .namespace = "n",
                                .name = "..a.b.."},
         "https://k:6443/api/v1/namespaces/n/configmaps/..a.b..");
}

static void test_escape(void **state) {
  (void)state;
  /* ':' and '@' stay in path segments (system:controller:x), not in queries */
  url_is(
      &(struct kube_request){.verb = KUBE_GET,
                             .group = "rbac.authorization.k8s.io",
                             .version = "v1",
                             .resource = "clusterroles",
                             .name = "system:controller:x?y#z"},
      "https://k:6443/apis/rbac.authorization.k8s.io/v1/clusterroles/system:controller:x%3Fy%23z");
  url_is(&(struct kube_request){.verb = KUBE_LIST,
                                .version = "v1",
                                .resource = "pods",
                                .field_selector = "spec.nodeName=a:b&c"},
         "https://k:6443/api/v1/pods?fieldSelector=spec.nodeName%3Da%3Ab%26c");
}

static void test_methods(void **state) {
  (void)state;
  assert_string_equal(kube_request_verb_method(KUBE_WATCH), "GET");
  assert_string_equal(kube_request_verb_method(KUBE_CREATE), "POST");
  assert_string_equal(kube_request_verb_method(KUBE_UPDATE), "PUT");
  assert_string_equal(kube_request_patch_content_type(KUBE_PATCH_APPLY),
                      "application/apply-patch+yaml");
  assert_string_equal(kube_request_patch_content_type(KUBE_PATCH_MERGE),
                      "application/merge-patch+json");
  assert_string_equal(kube_request_patch_content_type(KUBE_PATCH_JSON),
                      "application/json-patch+json");
  assert_string_equal(kube_request_patch_content_type(KUBE_PATCH_STRATEGIC),
                      "application/strategic-merge-patch+json");
}

static void test_retry(void **state) {
  (void)state;
  struct kube_request get = {.verb = KUBE_GET}, create = {.verb = KUBE_CREATE},
                      merge = {.verb = KUBE_PATCH, .patch_type = KUBE_PATCH_MERGE},
                      apply = {.verb = KUBE_PATCH, .patch_type = KUBE_PATCH_APPLY},
                      watch = {.verb = KUBE_WATCH};
  assert_true(kube_request_should_retry(&get, 429, 1, 5));
  assert_true(kube_request_should_retry(&get, 500, 1, 5));
  assert_true(kube_request_should_retry(&get, 503, 4, 5));
  assert_true(kube_request_should_retry(&get, 0, 1, 5));    /* connection error */
  assert_false(kube_request_should_retry(&get, 503, 5, 5)); /* attempts exhausted */
  assert_false(kube_request_should_retry(&get, 501, 1, 5));
  assert_false(kube_request_should_retry(&get, 404, 1, 5));
  assert_false(kube_request_should_retry(&get, 409, 1, 5));
  assert_false(kube_request_should_retry(&create, 500, 1, 5));
  assert_false(kube_request_should_retry(&merge, 429, 1, 5));
  assert_true(kube_request_should_retry(&apply, 429, 1, 5));
  assert_false(kube_request_should_retry(&watch, 500, 1, 5));
}

static void test_status_parse(void **state) {
  (void)state;
  const char *body =
      "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
      "\"message\":\"widgets.example.com \\\"a\\\" is invalid\",\"reason\":\"Invalid\","
      "\"details\":{\"name\":\"a\",\"kind\":\"widgets\",\"causes\":[{\"reason\":"
      "\"FieldValueInvalid\","
      "\"message\":\"Invalid value: 0\",\"field\":\"spec.size\"},{\"message\":\"m2\"}],"
      "\"retryAfterSeconds\":3},\"code\":422}";
  struct kube_status st;
  kube_status_parse(&st, body, strlen(body), 422);
  assert_int_equal(st.code, 422);
  assert_string_equal(st.reason, "Invalid");
  assert_string_equal(st.message, "widgets.example.com \"a\" is invalid");
  assert_int_equal(st.ncauses, 2);
  assert_string_equal(st.causes[0].type, "FieldValueInvalid");
  assert_string_equal(st.causes[0].field, "spec.size");
  assert_string_equal(st.causes[1].type, "");
  assert_string_equal(st.causes[1].message, "m2");
  assert_int_equal(st.retry_after_seconds, 3);
  assert_int_equal(kube_status_err(&st), GPC_E_API);
  kube_status_release(&st);

  const char *gone =
      "{\"kind\":\"Status\",\"code\":410,\"reason\":\"Expired\",\"message\":\"too old\"}";
  kube_status_parse(&st, gone, strlen(gone), 200);
  assert_int_equal(st.code, 410);
  assert_int_equal(kube_status_err(&st), GPC_E_GONE);
  kube_status_release(&st);
}

static void test_status_synthesized(void **state) {
  (void)state;
  struct kube_status st;
  const char *html = "<html>\nBad Gateway</html>";
  kube_status_parse(&st, html, strlen(html), 502);
  assert_int_equal(st.code, 502);
  assert_string_equal(st.reason, "InternalError");
  assert_non_null(strstr(st.message, "HTTP 502: <html> Bad Gateway"));
  assert_int_equal(st.ncauses, 0);
  kube_status_release(&st);

  kube_status_parse(&st, NULL, 0, 409);
  assert_string_equal(st.reason, "Conflict");
  assert_int_equal(kube_status_err(&st), GPC_E_CONFLICT);
  kube_status_release(&st);

  /* JSON that is not a Status (e.g. an object) is not mistaken for one */
  const char *obj = "{\"kind\":\"Node\",\"code\":200}";
  kube_status_parse(&st, obj, strlen(obj), 404);
  assert_int_equal(st.code, 404);
  assert_string_equal(st.reason, "NotFound");
  assert_int_equal(kube_status_err(&st), GPC_E_NOT_FOUND);
  kube_status_release(&st);

  kube_status_parse(&st, NULL, 0, 0);
  assert_non_null(strstr(st.message, "no response"));
  kube_status_release(&st);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_paths),
      cmocka_unit_test(test_query),
      cmocka_unit_test(test_url_errors),
      cmocka_unit_test(test_dot_segments_refused),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_methods),
      cmocka_unit_test(test_retry),
      cmocka_unit_test(test_status_parse),
      cmocka_unit_test(test_status_synthesized),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
