-- Argo CD health check for gpupolicy.dev/ClusterGPUPolicy.
-- Install as argocd-cm key resource.customizations.health.gpupolicy.dev_ClusterGPUPolicy
-- (see docs/gitops.md). Reads only status.observedGeneration and the
-- Ready / Reconciling / Stalled conditions the controller writes.
local hs = {status = "Progressing", message = "Waiting for the controller to report status"}
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting: removing node labels and operands"
  return hs
end
if obj.status == nil then
  return hs
end
local gen = obj.metadata and obj.metadata.generation
local observed = obj.status.observedGeneration
if observed == nil or (gen ~= nil and observed < gen) then
  hs.message = "Spec change not yet observed by the controller"
  return hs
end
local c = {}
for _, cond in ipairs(obj.status.conditions or {}) do
  if cond.type ~= nil then
    c[cond.type] = cond
  end
end
local function msg(cond, default)
  if cond ~= nil and cond.message ~= nil and cond.message ~= "" then
    return cond.message
  end
  return default
end
-- A terminal error (invalid spec, apply refused) needs a human: Degraded.
if c.Stalled ~= nil and c.Stalled.status == "True" then
  return {status = "Degraded", message = msg(c.Stalled, c.Stalled.reason or "Stalled")}
end
local ready = c.Ready
-- A Ready condition computed for an older generation says nothing yet.
if ready ~= nil and ready.observedGeneration ~= nil and gen ~= nil and ready.observedGeneration < gen then
  hs.message = "Ready condition not yet updated for the current spec"
  return hs
end
if ready ~= nil and ready.status == "True" then
  return {status = "Healthy", message = msg(ready, "All operands ready")}
end
if c.Reconciling ~= nil and c.Reconciling.status == "True" then
  hs.message = msg(ready, msg(c.Reconciling, "Rolling out"))
  return hs
end
if ready ~= nil and ready.status == "False" then
  return {status = "Degraded", message = msg(ready, ready.reason or "Not ready")}
end
if ready ~= nil then
  hs.message = msg(ready, "Ready is Unknown")
end
return hs
