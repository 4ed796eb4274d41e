"""moto server, with two workarounds that a whole bake through the AWS adapter needs.

- moto: it does not implement DescribeInstanceInformation (the SSM agent's
  registration), so a builder would never be "online". This launcher answers it the way
  AWS does for instances whose agent has registered: every running EC2 instance of the
  region, PingStatus Online.
- moto: CreateImage fails (HTTP 500) when TagSpecifications include the `snapshot`
  resource type, which AWS accepts. The launcher drops the snapshot entries; kiln's real
  request is asserted against recorded responses in the adapter's own tests.

Everything else is moto as it ships. Used only by the tests that drive a whole bake.
"""

import json
import sys

from moto.ec2.models import ec2_backends
from moto.ec2.responses.amis import AmisResponse
from moto.server import main
from moto.ssm.responses import SimpleSystemManagerResponse


def describe_instance_information(self):
    ec2 = ec2_backends[self.current_account][self.region]
    wanted = set()
    for entry in self._get_param("Filters") or []:
        if entry.get("Key") == "InstanceIds":
            wanted.update(entry.get("Values", []))
    for entry in self._get_param("InstanceInformationFilterList") or []:
        if entry.get("key") == "InstanceIds":
            wanted.update(entry.get("valueSet", []))
    found = []
    for reservation in ec2.reservations.values():
        for instance in reservation.instances:
            if instance.state != "running" or (wanted and instance.id not in wanted):
                continue
            found.append(
                {
                    "InstanceId": instance.id,
                    "PingStatus": "Online",
                    "AgentVersion": "3.3.0.0",
                    "PlatformType": "Linux",
                    "ResourceType": "EC2Instance",
                }
            )
    return json.dumps({"InstanceInformationList": found})


SimpleSystemManagerResponse.describe_instance_information = describe_instance_information

_create_image = AmisResponse.create_image


def create_image_without_snapshot_tags(self):
    original = self._get_param

    def get_param(name, *args, **kwargs):
        value = original(name, *args, **kwargs)
        if name == "TagSpecifications" and value:
            value = [spec for spec in value if spec.get("ResourceType") != "snapshot"]
        return value

    self._get_param = get_param
    return _create_image(self)


AmisResponse.create_image = create_image_without_snapshot_tags

if __name__ == "__main__":
    sys.exit(main())
