-- A request still waiting in the backlog at its deadline is finished with the outcome
-- EXPIRED; its next step (due now) publishes that outcome.
-- needs: due
-- include: moves

local function expire_in_backlog(id, job, now)
  local before = move(id, job, 'expire_queued', {
    'outcome_status', BACKLOG_EXPIRY.status, 'error', BACKLOG_EXPIRY.error,
    'finished_at', now, 'updated_at', now})
  if before then redis.call('ZADD', due, now, id) end
  return before
end
