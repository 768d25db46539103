"""`VpcConfig` as Lambda checks it: CreateFunction and UpdateFunctionConfiguration ask EC2 (moto's
here, through Flint's outbound connection) about the security groups, then the subnets, refuse
ones that do not exist in AWS's words (recorded by LocalStack's test_invalid_vpc_config_subnet
and _security_group), and answer the subnets' VPC as `VpcId` (test_vpc_config)."""

import pytest

from conftest import ROLE, client_error, make_zip, unique_name, wait_active

CODE = make_zip({"index.py": "def handler(event, context):\n    return event\n"})


@pytest.fixture(scope="module")
def network(aws_services):
    ec2 = aws_services.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.77.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=unique_name("sg"), Description="flint test",
                                      VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnet": subnet, "group": group}


def create(client, **vpc):
    name = unique_name("vpc")
    return name, client.create_function(
        FunctionName=name, Runtime="python3.11", Handler="index.handler", Role=ROLE,
        Code={"ZipFile": CODE}, VpcConfig=vpc)


def test_the_subnets_vpc_is_answered_and_an_emptied_config_leaves_it(lambda_client, network):
    name, created = create(lambda_client, SubnetIds=[network["subnet"]],
                           SecurityGroupIds=[network["group"]])
    assert created["VpcConfig"] == {
        "SubnetIds": [network["subnet"]], "SecurityGroupIds": [network["group"]],
        "VpcId": network["vpc"], "Ipv6AllowedForDualStack": False}
    wait_active(lambda_client, name)
    assert lambda_client.get_function_configuration(FunctionName=name)["VpcConfig"]["VpcId"] \
        == network["vpc"]
    # The function still runs (it does not join the VPC: README).
    assert lambda_client.invoke(FunctionName=name, Payload=b'{"a": 1}')["StatusCode"] == 200
    updated = lambda_client.update_function_configuration(
        FunctionName=name, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []})
    assert updated["VpcConfig"] == {"SubnetIds": [], "SecurityGroupIds": [], "VpcId": "",
                                    "Ipv6AllowedForDualStack": False}


def test_a_subnet_ec2_does_not_know_is_refused_in_awss_words(lambda_client, network):
    with pytest.raises(Exception) as e:
        create(lambda_client, SubnetIds=["subnet-0123456789abcdef0"],
               SecurityGroupIds=[network["group"]])
    err = client_error(e)
    assert (err["status"], err["code"], err["type"]) == \
        (400, "InvalidParameterValueException", "User"), err
    assert err["message"] == (
        "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. "
        "EC2 Error Message: The subnet ID 'subnet-0123456789abcdef0' does not exist"), err


def test_security_groups_are_checked_first(lambda_client, network):
    with pytest.raises(Exception) as e:
        create(lambda_client, SubnetIds=["subnet-0123456789abcdef0"],
               SecurityGroupIds=["sg-0123456789abcdef0"])
    err = client_error(e)
    assert err["code"] == "InvalidParameterValueException", err
    assert err["message"].startswith(
        "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. "
        "EC2 Error Message: "), err
    assert "sg-0123456789abcdef0" in err["message"], err


def test_an_update_to_a_subnet_ec2_does_not_know_changes_nothing(lambda_client, network):
    name, _ = create(lambda_client, SubnetIds=[network["subnet"]],
                     SecurityGroupIds=[network["group"]])
    wait_active(lambda_client, name)
    with pytest.raises(Exception) as e:
        lambda_client.update_function_configuration(
            FunctionName=name, VpcConfig={"SubnetIds": ["subnet-0fffffffffffffff0"],
                                          "SecurityGroupIds": [network["group"]]})
    assert client_error(e)["code"] == "InvalidParameterValueException"
    assert lambda_client.get_function_configuration(FunctionName=name)["VpcConfig"]["SubnetIds"] \
        == [network["subnet"]]


def test_an_update_of_a_missing_function_is_a_404_before_ec2_is_asked(lambda_client, network):
    with pytest.raises(Exception) as e:
        lambda_client.update_function_configuration(
            FunctionName=unique_name("missing"),
            VpcConfig={"SubnetIds": ["subnet-0fffffffffffffff0"],
                       "SecurityGroupIds": [network["group"]]})
    err = client_error(e)
    assert (err["status"], err["code"]) == (404, "ResourceNotFoundException"), err
