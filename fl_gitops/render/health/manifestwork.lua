-- Argo CD health check for work.open-cluster-management.io/ManifestWork (fl-gitops).
--
-- One ManifestWork carries one cluster's part of one FL round: a ConfigMap with the
-- round config and a batch/v1 Job that trains. Its health is the round's health on
-- that cluster:
--   Progressing  not applied yet, status from another generation, feedback from the
--                previous round's Job, being deleted, or the Job is still running (or
--                retrying)
--   Degraded     the work agent could not apply the manifests or read the Job's
--                status, or the Job failed (or finished without succeeding)
--   Healthy      the round's Job succeeded
-- A result in the Job's feedback decides before the work's Applied condition: once the
-- Job has finished, the round on that cluster is over.
--
-- Status feedback comes from the work agent's WellKnownStatus rule for batch/v1 Jobs
-- (JobComplete: String, the status of the Job's "Complete" condition, which Kubernetes
-- sets only on success; JobSucceeded: Integer, .status.succeeded) and a JSONPaths rule
-- (failed: .status.failed, succeeded: .status.succeeded; optionally JobFailed: the
-- status of the "Failed" condition). Zero counts are omitted by the Job's status, so
-- a missing count means 0; counts are read against the Job's backoffLimit and
-- completions. The Job's conditionRules (WellKnownConditions, Complete) make the agent
-- write a "Complete" condition on the Job's entry once it finished either way. Numbers
-- go through tonumber: Argo CD hands a json.Number to Lua as a string.
--
-- fl-gitops's interpret_work (fl_gitops/hub/_status.py) reads the same fields in the
-- same order, and both are tested on one set of objects (tests/hub/manifestwork_cases.py):
-- what Argo CD shows and what the reconcile job decides on cannot drift apart.
--
-- Argo CD runs this with only the base, table and a safe os library loaded (no string
-- or math), under gopher-lua (Lua 5.1): keep it that way.

local hs = {}

local function conditionOf(conditions, condType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == condType then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.type .. "=" .. tostring(c.status)
  if c.reason ~= nil and c.reason ~= "" then
    text = text .. " (" .. c.reason .. ")"
  end
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

-- "True" (String feedback, or a condition status) or true (Boolean feedback).
local function isTrue(fv)
  if fv == nil then
    return false
  end
  if fv.type == "String" then
    return fv.string == "True"
  end
  if fv.type == "Boolean" then
    return fv.boolean == true
  end
  return false
end

local function integerOf(fv)
  if fv ~= nil and fv.type == "Integer" then
    return tonumber(fv.integer)
  end
  return nil
end

local function done(status, message)
  hs.status = status
  hs.message = message
  return hs
end

local function evaluate()
  local meta = obj.metadata or {}
  local spec = obj.spec or {}
  local status = obj.status

  if meta.deletionTimestamp ~= nil then
    return done("Progressing", "Pending deletion")
  end
  if status == nil or status.conditions == nil or #status.conditions == 0 then
    return done("Progressing", "Waiting for the work agent to report status")
  end

  -- Conditions written for another generation say nothing about the current spec
  -- (for example, the previous round before the reconcile job committed this one), and
  -- Applied or Available without an observedGeneration cannot be dated.
  local generation = tonumber(meta.generation)
  for _, c in ipairs(status.conditions) do
    local observed = tonumber(c.observedGeneration)
    if generation ~= nil and observed ~= nil and observed ~= generation then
      return done("Progressing", "Status is for generation " .. tostring(observed)
        .. ", waiting for the work agent to observe generation " .. tostring(generation))
    end
    if generation ~= nil and observed == nil and (c.type == "Applied" or c.type == "Available") then
      return done("Progressing", "Condition " .. c.type .. " has no observedGeneration,"
        .. " waiting for the work agent to observe generation " .. tostring(generation))
    end
  end

  local applied = conditionOf(status.conditions, "Applied")
  if applied == nil then
    return done("Progressing", "Waiting for the manifests to be applied")
  end

  -- The Job of the current round, as written in the spec.
  local job = nil
  local workload = spec.workload or {}
  for _, m in ipairs(workload.manifests or {}) do
    if m.kind == "Job" and m.apiVersion == "batch/v1" then
      job = m
      break
    end
  end

  -- The Job's entry in the resource status; an entry for another Job is the previous
  -- round's, left from before the agent applied this generation.
  local entry = nil
  local staleName = nil
  local jobMeta = {}
  local jobName = ""
  local jobSpec = {}
  if job ~= nil then
    jobMeta = job.metadata or {}
    jobName = jobMeta.name or ""
    jobSpec = job.spec or {}
    local resourceStatus = status.resourceStatus or {}
    for _, m in ipairs(resourceStatus.manifests or {}) do
      local rm = m.resourceMeta or {}
      if rm.kind == "Job" and (rm.group == nil or rm.group == "batch") then
        if rm.name == jobName and (rm.namespace == nil or jobMeta.namespace == nil
            or rm.namespace == jobMeta.namespace) then
          entry = m
          break
        end
        staleName = rm.name
      end
    end
  end

  -- A result in the Job's feedback decides first: the round on this cluster is over.
  local values = {}
  local succeeded = 0
  local failed = 0
  local backoffLimit = tonumber(jobSpec.backoffLimit)
  if backoffLimit == nil then
    backoffLimit = 6 -- the Kubernetes default
  end
  if entry ~= nil then
    local feedback = entry.statusFeedback or {}
    for _, v in ipairs(feedback.values or {}) do
      if v.name ~= nil then
        values[v.name] = v.fieldValue
      end
    end
    succeeded = integerOf(values.succeeded) or 0
    local jobSucceeded = integerOf(values.JobSucceeded) or 0
    if jobSucceeded > succeeded then
      succeeded = jobSucceeded
    end
    failed = integerOf(values.failed) or 0
    local completions = tonumber(jobSpec.completions) or 1

    if isTrue(values.JobComplete) then
      return done("Healthy", "Job " .. jobName .. " succeeded")
    end
    if isTrue(values.JobFailed) then
      return done("Degraded", "Job " .. jobName .. " failed (" .. tostring(failed)
        .. " failed pods)")
    end
    if failed > backoffLimit then
      return done("Degraded", "Job " .. jobName .. " failed: " .. tostring(failed)
        .. " failed pods, backoffLimit " .. tostring(backoffLimit))
    end
    if succeeded >= completions then
      return done("Healthy", "Job " .. jobName .. " succeeded")
    end
  end

  if applied.status == "False" then
    return done("Degraded", "Manifests not applied: " .. describe(applied))
  end
  local degraded = conditionOf(status.conditions, "Degraded")
  if degraded ~= nil and degraded.status == "True" then
    return done("Degraded", describe(degraded))
  end
  if applied.status ~= "True" then
    return done("Progressing", "Waiting for the manifests to be applied")
  end

  if job == nil then
    local available = conditionOf(status.conditions, "Available")
    if available ~= nil and available.status == "True" then
      return done("Healthy", "Manifests applied and available")
    end
    return done("Progressing", "Waiting for the manifests to become available")
  end
  if entry == nil then
    if staleName ~= nil then
      return done("Progressing", "Status feedback is for Job " .. tostring(staleName)
        .. " of an earlier round, waiting for Job " .. jobName)
    end
    return done("Progressing", "Waiting for status feedback from Job " .. jobName)
  end

  local jobApplied = conditionOf(entry.conditions, "Applied")
  if jobApplied ~= nil and jobApplied.status ~= "True" then
    return done("Degraded", "Job " .. jobName .. " not applied: " .. describe(jobApplied))
  end
  local synced = conditionOf(entry.conditions, "StatusFeedbackSynced")
  if synced == nil then
    return done("Progressing", "Waiting for status feedback from Job " .. jobName)
  end
  if synced.status ~= "True" then
    return done("Degraded", "Status feedback from Job " .. jobName .. " failed: "
      .. describe(synced))
  end
  -- A conditionRules WellKnownConditions rule marks the Job "Complete" once it has
  -- finished either way; finished without success is a failure.
  local complete = conditionOf(entry.conditions, "Complete")
  if complete ~= nil and complete.status == "True" and (generation == nil
      or tonumber(complete.observedGeneration) == nil
      or tonumber(complete.observedGeneration) == generation) then
    return done("Degraded", "Job " .. jobName .. " finished without succeeding")
  end
  if failed > 0 then
    return done("Progressing", "Job " .. jobName .. " is retrying: " .. tostring(failed)
      .. " failed pods, backoffLimit " .. tostring(backoffLimit))
  end
  return done("Progressing", "Job " .. jobName .. " is running")
end

return evaluate()
