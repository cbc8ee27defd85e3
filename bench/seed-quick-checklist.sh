#!/usr/bin/env bash
# The runbooks' quick checklist, scripted as an SRE runs it: one command after another
# (seeds/apiserver-troubleshooting-extended.decoded.md §0 "10 分钟快速诊断" and the checks by layer of
# apiserver-troubleshooting.md §2.3 / control-plane-troubleshooting.md). Covers what
# `kubectl cphealth` covers. Needs KUBECONFIG; ETCD_POD and ETCD_ENDPOINT name one etcd member;
# ETCD_PKI is its certificate directory in the pod (kubeadm's by default).
set -u
kubectl version
kubectl get --raw /readyz
kubectl get --raw '/readyz?verbose'
kubectl get --raw '/livez?verbose'
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
hostport=${server#https://}
echo | openssl s_client -connect "$hostport" 2>/dev/null | openssl x509 -noout -dates -subject
port=${hostport##*:}
for ip in $(kubectl get endpoints kubernetes -o jsonpath='{range .subsets[*].addresses[*]}{.ip}{" "}{end}'); do
  curl -sk --max-time 5 "https://$ip:$port/readyz?verbose" | tail -1
done
kubectl get pods -n kube-system -l tier=control-plane -o wide
kubectl get events -n kube-system --field-selector type=Warning
kubectl get lease -n kube-system kube-controller-manager kube-scheduler
pki=${ETCD_PKI:-/etc/kubernetes/pki/etcd}
etcdctl_in_pod() {
  kubectl exec -n kube-system "$ETCD_POD" -- etcdctl --endpoints="$ETCD_ENDPOINT" \
    --cacert="$pki/ca.crt" --cert="$pki/healthcheck-client.crt" --key="$pki/healthcheck-client.key" "$@"
}
etcdctl_in_pod endpoint status --cluster --write-out=table
etcdctl_in_pod endpoint health --cluster
etcdctl_in_pod alarm list
kubectl get --raw /metrics | grep -E '^apiserver_current_inflight_requests|^apiserver_flowcontrol_rejected_requests_total' | head
kubectl get --raw /metrics | grep -E '^apiserver_request_duration_seconds_count' | head -5
kubectl get apiservices
kubectl get nodes
kubectl get validatingwebhookconfigurations,mutatingwebhookconfigurations
