/*
 * routes.h — the route handlers (handlers.c) that router.c's table points at. Each runs on a
 * complete request (path parameters decoded, body read, content type checked) and fills
 * the response; none keeps anything after it returns.
 */
#ifndef TDM_HTTP_ROUTES_H
#define TDM_HTTP_ROUTES_H

#include "http/http_int.h"

void tdm__http_h_health(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_list_processes(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_get_process(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_put_process(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_train(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_submit(tdm__http_request *req, tdm__http_response *res);

/*
 * The same intake without a thread waiting for the durable commit: _start parses and routes
 * and queues the write, returning 1 (done(arg) will be called from the engine's writer
 * thread when the write is over; then call _finish for the answer), or 0 with `res` holding
 * the answer already (an error; nothing was stored).
 */
int tdm__http_h_submit_start(tdm__http_request *req, tdm__http_response *res,
                             void (*done)(void *arg), void *arg);
void tdm__http_h_submit_finish(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_get_item(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_list_tasks(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_claim(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_complete(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_feedback(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_audit(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_audit_verify(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_export(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_list_tokens(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_create_token(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_revoke_token(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_pause(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_resume(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_registry(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_fairness(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_dashboard(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_me(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_queues(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_get_task(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_next(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_asset(tdm__http_request *req, tdm__http_response *res);
/* GET /v1/events is not answered by a handler: server.c streams it (see there). */
void tdm__http_h_events(tdm__http_request *req, tdm__http_response *res);
/* Webhooks (docs/api.md, "Webhooks"). */
void tdm__http_h_list_webhooks(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_create_webhook(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_delete_webhook(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_webhook_deliveries(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_replay_webhook(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_replay_delivery(tdm__http_request *req, tdm__http_response *res);

void tdm__http_h_metrics(tdm__http_request *req, tdm__http_response *res);
void tdm__http_h_prometheus(tdm__http_request *req, tdm__http_response *res);

#endif /* TDM_HTTP_ROUTES_H */
