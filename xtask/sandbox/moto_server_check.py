"""Checks that `moto_server.py`'s serializer patch leaves moto's answers as they were: twenty of the calls
suma makes (ECS, RDS, Secrets Manager, Route 53, KMS, EC2, ELBv2, ElastiCache), each answered by moto in
process with its own serializer and then with the patched one (twice, so that the second is served from
the cache), must parse to the same response. Then that the launcher's server keeps connections open
without mixing requests up: requests with a body, without one and chunked, one after the other on one
connection, and two sent at once, are each answered on it; a request whose length cannot be read is
answered on a connection that then closes, as werkzeug does. Run by xtask's tests with the sandbox's venv;
exits 1 on a difference, printing what differed.

Usage: python moto_server_check.py
"""

import http.client
import os
import pathlib
import socket
import subprocess
import sys
import time

os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-west-1")

import boto3  # noqa: E402
import moto.core.serialize as serialize  # noqa: E402
from moto import mock_aws  # noqa: E402

REGION = "eu-west-1"
ORIGINAL = (serialize.AttributePicker.__call__, serialize.ResponseSerializer.get_value)
# The launcher's patches, without starting its server.
launcher = pathlib.Path(__file__).with_name("moto_server.py").read_text()
exec(compile(launcher.split("from moto.server import main")[0], "moto_server.py", "exec"), {"__name__": "moto_server"})
PATCHED = (serialize.AttributePicker.__call__, serialize.ResponseSerializer.get_value)
assert PATCHED != ORIGINAL, "moto_server.py no longer patches the serializer: update this check"


def use(functions):
    serialize.AttributePicker.__call__, serialize.ResponseSerializer.get_value = functions


def answer(call, kwargs):
    response = call(**kwargs)
    response.pop("ResponseMetadata", None)
    for instance in response.get("DBInstances", []):
        instance.pop("LatestRestorableTime", None)  # "now", by the clock
    return response


def main():
    c = lambda service: boto3.client(service, region_name=REGION)  # noqa: E731
    ecs, rds, sm, r53, kms, ec2, elb, cache = (
        c(s) for s in ("ecs", "rds", "secretsmanager", "route53", "kms", "ec2", "elbv2", "elasticache"))
    ecs.create_cluster(clusterName="check")
    ecs.register_task_definition(family="app", networkMode="awsvpc", cpu="256", memory="512", containerDefinitions=[{
        "name": "app", "image": "registry.example/app:1", "user": "10001", "readonlyRootFilesystem": True,
        "environment": [{"name": "PORT", "value": "8080"}],
        "secrets": [{"name": "DB_PASSWORD", "valueFrom": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:db"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/app"}},
        "healthCheck": {"command": ["CMD", "true"]}}])
    ecs.create_service(cluster="check", serviceName="app", taskDefinition="app", desiredCount=1)
    key = kms.create_key(Description="check")["KeyMetadata"]["Arn"]
    rds.create_db_instance(DBInstanceIdentifier="db", DBInstanceClass="db.t4g.micro", Engine="postgres",
                           AllocatedStorage=20, MasterUsername="app", MasterUserPassword=os.urandom(8).hex(),
                           StorageEncrypted=True, KmsKeyId=key)
    rds.create_db_snapshot(DBInstanceIdentifier="db", DBSnapshotIdentifier="snap")
    sm.create_secret(Name="db", SecretString=os.urandom(8).hex())
    zone = r53.create_hosted_zone(Name="example.com", CallerReference="check")["HostedZone"]["Id"]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"]["SubnetId"]
               for i, az in ((1, "a"), (2, "b"))]
    lb = elb.create_load_balancer(Name="lb", Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    cache.create_replication_group(ReplicationGroupId="rg", ReplicationGroupDescription="check", Engine="redis",
                                   CacheNodeType="cache.t3.micro", NumCacheClusters=2)
    calls = [
        (ecs.describe_task_definition, {"taskDefinition": "app", "include": ["TAGS"]}),
        (ecs.describe_services, {"cluster": "check", "services": ["app"]}),
        (ecs.list_task_definitions, {}), (ecs.describe_clusters, {"clusters": ["check"]}),
        (rds.describe_db_instances, {}), (rds.describe_db_snapshots, {}),
        (rds.describe_db_snapshot_attributes, {"DBSnapshotIdentifier": "snap"}),
        (sm.list_secrets, {}), (sm.describe_secret, {"SecretId": "db"}), (sm.get_resource_policy, {"SecretId": "db"}),
        (r53.list_resource_record_sets, {"HostedZoneId": zone}), (r53.list_hosted_zones, {}),
        (kms.describe_key, {"KeyId": key}), (kms.get_key_rotation_status, {"KeyId": key}),
        (ec2.describe_security_groups, {}), (ec2.describe_subnets, {}),
        (elb.describe_load_balancers, {}), (elb.describe_load_balancer_attributes, {"LoadBalancerArn": lb}),
        (cache.describe_replication_groups, {}), (cache.describe_cache_clusters, {}),
    ]
    differences = 0
    for call, kwargs in calls:
        use(ORIGINAL)
        expected = answer(call, kwargs)
        use(PATCHED)
        answers = [answer(call, kwargs), answer(call, kwargs)]
        if any(a != expected for a in answers):
            differences += 1
            print(f"{call.__name__}: moto answers\n  {expected}\nbut with the patch\n  {answers}")
    print(f"{len(calls)} calls, {differences} difference(s)")
    return 1 if differences else 0


LIST_CLUSTERS = {
    "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListClusters",
    "Content-Type": "application/x-amz-json-1.1",
    "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/ecs/aws4_request, "
                     "SignedHeaders=host, Signature=0",
}


def raw_request(length_header):
    head = "".join(f"{k}: {v}\r\n" for k, v in LIST_CLUSTERS.items())
    return f"POST / HTTP/1.1\r\nHost: check\r\n{head}{length_header}\r\n{{}}".encode()


def read_until_closed(sock, answers):
    """What the server sends on `sock` until it closes it, or until `answers` answers came and it stays open."""
    data = b""
    sock.settimeout(5)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
            if data.count(b"HTTP/1.1 200") >= answers and data.endswith(b"}"):
                sock.settimeout(0.3)
    except socket.timeout:
        return data, False


def check_connections(port):
    """The launcher's connection handling, against its server on `port`: a list of what went wrong."""
    problems = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    requests = [("POST", b"{}", {}), ("GET", None, {}), ("POST", iter([b"{", b"}"]), {"Transfer-Encoding": "chunked"})]
    first_socket = None
    for method, body, extra in requests:
        headers = dict(LIST_CLUSTERS, **extra)
        conn.request(method, "/", body=body, headers=headers, encode_chunked=bool(extra))
        response = conn.getresponse()
        text = response.read()
        if first_socket is None:
            first_socket = conn.sock
        if response.status != 200 or b"clusterArns" not in text:
            problems.append(f"{method} {extra}: {response.status} {text[:200]!r}")
        if conn.sock is None or conn.sock is not first_socket:
            problems.append(f"{method} {extra}: the connection was not kept ({response.getheader('Connection')})")
    conn.close()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(raw_request("Content-Length: 2\r\n") * 2)
        data, closed = read_until_closed(sock, 2)
        if data.count(b"clusterArns") != 2 or closed:
            problems.append(f"two requests sent at once: {data.count(b'clusterArns')} answers, closed={closed}")
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(raw_request("Content-Length: two\r\n"))
        data, closed = read_until_closed(sock, 1)
        if b"Connection: close" not in data or not closed:
            problems.append(f"an unreadable length: connection closed={closed}, answer {data[:300]!r}")
    return problems


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_server():
    port = free_port()
    launcher_path = pathlib.Path(__file__).with_name("moto_server.py")
    server = subprocess.Popen([sys.executable, str(launcher_path), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the launcher's server did not start")
                    return 1
                time.sleep(0.2)
        problems = check_connections(port)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for problem in problems:
        print(f"connections: {problem}")
    print(f"connections: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    with mock_aws():
        answers = main()
    sys.exit(answers | check_server())
