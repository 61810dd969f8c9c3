"""Run Prowler's own CLI against the moto server named by AWS_ENDPOINT_URL, for `cargo xtask bench compliance`.

Why this exists: Prowler 5.13.1 builds its STS client with an explicit regional endpoint
(`AwsProvider.create_sts_session` in prowler/providers/aws/aws_provider.py passes
`endpoint_url=f"https://sts.{region}.amazonaws.com"`). An explicit `endpoint_url` wins over AWS_ENDPOINT_URL
in botocore, so Prowler's credential check goes to AWS, never reaches moto and Prowler stops before any check.
Every other client Prowler creates already honours AWS_ENDPOINT_URL.

The one patch: botocore's `Session.create_client` (which boto3's `Session.client` calls too) is wrapped so that
an explicit `endpoint_url` on an AWS host (`*.amazonaws.com`, `*.amazonaws.com.cn`) is replaced by
AWS_ENDPOINT_URL. Clients created without an endpoint are left alone (AWS_ENDPOINT_URL already applies), and
nothing else in Prowler is touched: its entry point, arguments, checks and outputs are the released ones.

What moto 5.2.5 lacks that Prowler asks for, left unpatched because Prowler logs the error and carries on (seen
with `--log-level WARNING`): RDS `DescribeCertificates` (so `rds_instance_certificate_expiration` fails every
instance) and `DescribeDBEngineVersions` (so `rds_instance_deprecated_engine_version` fails every instance);
EC2 `GetSnapshotBlockPublicAccessState`, `GetInstanceMetadataDefaults` and `DescribeClientVpnEndpoints` (EC2
inventory the RDS checks load; no RDS check reads those parts); Organizations `DescribeAccount` (a warning:
the account is not in an organization). Each is one failed request; the two RDS checks named above then fail
every instance, findings that real AWS data would decide.

Usage (with the Python of Prowler's venv):
  python prowler_moto.py aws --service ecs rds ...   Prowler's CLI, arguments unchanged
  python prowler_moto.py --summarize DIR             counts in DIR's json-ocsf files, as JSON on stdout:
                                                     {"findings", "resources" (distinct resource uids),
                                                      "services": {name: {"findings", "resources"}}}
"""

import glob
import inspect
import json
import os
import re
import sys

AWS_HOST = re.compile(r"^https?://[^/]*\.amazonaws\.com(\.cn)?(:\d+)?/?$")


def point_clients_at(endpoint):
    import botocore.session

    original = botocore.session.Session.create_client
    signature = inspect.signature(original)

    def create_client(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        url = bound.arguments.get("endpoint_url")
        if url and AWS_HOST.match(url):
            bound.arguments["endpoint_url"] = endpoint
        return original(*bound.args, **bound.kwargs)

    botocore.session.Session.create_client = create_client


def summarize(directory):
    files = glob.glob(os.path.join(directory, "*.ocsf.json"))
    if not files:
        sys.exit(f"error: no json-ocsf output (*.ocsf.json) in {directory}")
    services, all_resources, total = {}, set(), 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            findings = json.load(f)
        for finding in findings:
            # event_code is the check id, `<service>_<check>`; the service is its first word.
            service = finding["metadata"]["event_code"].split("_")[0]
            entry = services.setdefault(service, {"findings": 0, "resources": set()})
            entry["findings"] += 1
            total += 1
            for resource in finding.get("resources", []):
                entry["resources"].add(resource["uid"])
                all_resources.add(resource["uid"])
    print(json.dumps({
        "findings": total,
        "resources": len(all_resources),
        "services": {name: {"findings": s["findings"], "resources": len(s["resources"])}
                     for name, s in sorted(services.items())},
    }))


def main():
    if sys.argv[1:2] == ["--summarize"]:
        if len(sys.argv) != 3:
            sys.exit("usage: prowler_moto.py --summarize DIR")
        summarize(sys.argv[2])
        return
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        sys.exit("error: AWS_ENDPOINT_URL is not set\nhint: set it to the moto server's URL, e.g. http://127.0.0.1:5000")
    point_clients_at(endpoint)
    from prowler.__main__ import prowler

    sys.argv[0] = "prowler"
    sys.exit(prowler())


if __name__ == "__main__":
    main()
