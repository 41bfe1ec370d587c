-- One reviewer's turn over routing_workitem, as the churn does it: claim the next
-- waiting item, complete it, and enqueue a new one like it (three transactions).
-- :rid (pgbench -D rid=N) is a user the claims are made for.
BEGIN;
UPDATE routing_workitem
   SET state = 'claimed', assignee_id = :rid, claimed_at = now(), last_activity_at = now(),
       updated_at = now()
 WHERE id = (SELECT id FROM routing_workitem WHERE state IN ('queued', 'awaiting_checker')
              ORDER BY rank_at, id FOR UPDATE SKIP LOCKED LIMIT 1)
RETURNING id AS claimed \gset
COMMIT;
UPDATE routing_workitem SET state = 'done', decided_at = now(), last_activity_at = now(),
       updated_at = now()
 WHERE id = :claimed;
INSERT INTO routing_workitem (case_id, step_run_id, kind, queue_id, priority, region, skills,
    state, assignee_id, enqueued_at, rank_at, claimed_at, last_activity_at, decided_at, due_at,
    warn_at, warned_at, breached_at, escalate_at, snoozed_until, snooze_reason, maker_id,
    excluded_reviewers, flag, reassignment_count, escalation_level, updated_at)
SELECT w.case_id, w.step_run_id, w.kind, w.queue_id, w.priority, w.region, w.skills,
       'queued', NULL, now(), now() + (w.rank_at - w.enqueued_at), NULL, NULL, NULL,
       now() + interval '8 hours', now() + interval '6 hours', NULL, NULL,
       now() + interval '8 hours', NULL, '', NULL, '[]', '', 0, 0, now()
  FROM routing_workitem w WHERE w.id = :claimed;
