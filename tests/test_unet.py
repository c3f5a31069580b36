import pytest
import torch

from dif.unet import UNet, count_parameters


def test_paper_shapes_and_parameter_count():
    net = UNet(in_channels=16, out_channels=3, width=32, depth=4)
    # Counted by hand from the authors' layer list (convs with bias, BN, ConvTranspose + BN).
    assert count_parameters(net) == 3_705_667
    out = net(torch.rand(1, 16, 64, 96))
    assert out.shape == (1, 3, 64, 96)
    assert out.abs().max() <= 1.0  # tanh output


def test_layer_inventory_matches_the_paper():
    net = UNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(convs) == 2 * 4 + 2 + 2 * 4 + 1  # encoder, bottleneck, decoder, 1x1 head
    assert len(ups) == 4 and all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    assert len(bns) == len(convs) - 1 + len(ups)
    assert isinstance(net.head[-1], torch.nn.Tanh)
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.modules())
    assert convs[0].in_channels == 16 and convs[0].out_channels == 32


def test_small_model_and_bad_size():
    net = UNet(16, 3, width=8, depth=2)
    assert net(torch.rand(2, 16, 32, 32)).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.rand(1, 16, 30, 32))
