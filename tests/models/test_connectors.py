"""The connectors: pixel shuffle, frame pooling, patch states, the resampler, FiLM (hand-worked cases)."""
import pytest
import torch

import family
from family import EXAMPLES, pictures
from mbmlab.metrics.generate import generate
from mbmlab.models import connectors
from mbmlab.models.connectors import frame_pool, patch_states, pixel_shuffle


def test_pixel_shuffle_hand_worked():
    # a 4×4 grid of 1-d patches numbered row by row; f=2 gathers each 2×2 block into one token
    grid = torch.arange(16.0).reshape(1, 16, 1)
    out = pixel_shuffle(grid, 2)
    assert out.shape == (1, 4, 4)
    assert out[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert pixel_shuffle(grid, 1) is grid
    with pytest.raises(ValueError, match="pixel shuffle 3"):
        pixel_shuffle(grid, 3)


def test_frame_pool_hand_worked():
    # 5 frames [1, 2, 3, 4, 5] pooled by 2: (1+2)/2, (3+4)/2, and the short last window 5/1
    frames = torch.tensor([1.0, 2, 3, 4, 5]).reshape(1, 5, 1)
    assert frame_pool(frames, 2).flatten().tolist() == [1.5, 3.5, 5.0]
    assert frame_pool(frames, 1) is frames


def test_patch_states_of_a_cnn_map_and_a_vit_sequence():
    cnn = torch.arange(8.0).reshape(1, 2, 2, 2)  # (N, C, h, w)
    assert patch_states(cnn)[0].tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]  # row by row, channels last
    vit = torch.randn(1, 1 + 4, 3)  # [CLS] + a 2×2 grid
    assert torch.equal(patch_states(vit), vit[:, 1:])


def test_pixel_shuffle_makes_fewer_image_tokens(tokenizer):
    model, processor = family.build(tokenizer, "gpt2", "vit", image_connector="patches", image_pixel_shuffle=2)
    assert model.config.image_seq_length == 4  # a 4×4 patch grid, 2×2 blocks
    pooled, _ = family.build(tokenizer, "gpt2", "vit", image_connector="pooled", image_prefix_length=3)
    assert pooled.config.image_seq_length == 3
    assert generate(model, processor, EXAMPLES[:1], processor.pixel_values(pictures(1)), max_new_tokens=3,
                    progress=False)


def test_resampler_emits_its_queries_whatever_it_reads_and_ignores_their_order():
    """Perceiver attention has no positions: permuting the encoder states must not change the output."""
    from mbmlab.models.connectors import Resampler

    torch.manual_seed(0)
    resampler = Resampler(6, 16, queries=5).eval()
    states = torch.randn(2, 7, 6)
    out = resampler(states)
    assert out.shape == (2, 5, 16) and resampler(torch.randn(2, 30, 6)).shape == (2, 5, 16)
    torch.testing.assert_close(resampler(states[:, torch.randperm(7)]), out)
    assert resampler(torch.randn(2, 6)).shape == (2, 5, 16)  # a pooled vector: a sequence of one


def test_coordinates_hand_worked():
    grid = torch.zeros(1, 1, 2, 3)
    out = connectors.with_coordinates(grid)
    assert out.shape == (1, 3, 2, 3)
    torch.testing.assert_close(out[0, 1], torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]))  # x
    torch.testing.assert_close(out[0, 2], torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))  # y


def test_prompt_tokens_moves_the_kept_tokens_to_the_row_start():
    embeddings = torch.nn.Embedding(10, 2)
    with torch.no_grad():
        embeddings.weight.copy_(torch.arange(20, dtype=torch.float).view(10, 2))
    ids = torch.tensor([[0, 0, 5, 6, 7], [3, 4, 0, 9, 1]])
    keep = torch.tensor([[False, False, True, True, False], [True, False, False, True, True]])
    out, lengths = connectors.prompt_tokens(ids, keep, embeddings)
    assert lengths.tolist() == [2, 3]
    expected = torch.tensor([[[10.0, 11], [12, 13], [0, 0]], [[6, 7], [18, 19], [2, 3]]])
    torch.testing.assert_close(out, expected)


def test_attend_reads_where_the_question_points_and_never_the_padding():
    """Each head's pooled vector is its softmax-weighted mean of the grid cells' values, with the
    query from the prompt: worked by hand here (weights from the module's own keys and query), a
    second prompt reads the same image differently, and padding past a prompt's length is never
    read. Mutation: the softmax over the heads instead of the cells → the hand check fails."""
    torch.manual_seed(0)
    attend = connectors.AttendConnector(in_channels=5, vocab_size=10, dim=8, heads=3)
    grid = torch.randn(1, 5, 3, 3).expand(2, -1, -1, -1)  # one image, two prompts
    prompts, lengths = attend.embed(torch.tensor([[1, 2, 3], [4, 5, 0]])), torch.tensor([3, 2])
    read = attend(grid, prompts, lengths)
    assert read.shape == (2, 3, 8)
    assert not torch.allclose(read[0], read[1])
    with torch.no_grad():
        cells = connectors.with_coordinates(grid).flatten(2).transpose(1, 2)  # (2, 9, 7)
        kv = attend.keys_values(connectors.with_coordinates(grid)).flatten(2).transpose(1, 2)
        keys, values = kv[..., :8], kv[..., 8:]
        query = attend.queries(attend.encode_question(prompts, lengths)).view(2, 3, 8)
        for row in range(2):
            for head in range(3):
                scores = torch.tensor([float(query[row, head] @ keys[row, c]) / 8 ** 0.5 for c in range(9)])
                weights = scores.exp() / scores.exp().sum()
                expected = sum(weights[c] * values[row, c] for c in range(9))
                torch.testing.assert_close(read[row, head], expected, rtol=1e-5, atol=1e-6)
    assert cells.shape[-1] == 7  # two coordinate channels were appended
    padded = prompts.clone()
    padded[1, 2] = 100.0
    torch.testing.assert_close(attend(grid, padded, lengths), read)
