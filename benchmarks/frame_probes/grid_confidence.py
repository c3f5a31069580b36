import torch, glob
from dif.artificial.weights import load_model, DEFAULT_PAIR
from dif.artificial.frame import embed_frame, frame_logits, grid_for, tile_logits, thumbnail, canvas_side
from dif.artificial.bits import random_bits
from dif.data import load_image
from dif.robustness import get_perturbation
torch.set_num_threads(1)
enc=load_model(DEFAULT_PAIR/"encoder.pth","encoder"); dec=load_model(DEFAULT_PAIR/"decoder.pth","decoder")
g=torch.Generator().manual_seed(0)
for f in sorted(glob.glob('/work/shared/data/cnndetection/crn/0_real/*'))[:3]+sorted(glob.glob('/work/shared/data/natural/live1/*'))[:2]:
    x=load_image(f)[None]; b=random_bits(1,100,g)
    with torch.no_grad():
        y=(embed_frame(enc,b,x,38.5)*255).round()/255
        for name, z in (("clean", x), ("fp", y), ("fp-half", get_perturbation("resize0.5")(y[0])[None])):
            row=[]
            for gr in (1,2,4):
                L=tile_logits(dec, thumbnail(z, canvas_side(64)), gr)[0]
                m=L.mean(0); row.append(f"g{gr}: |mean| {m.abs().mean():.2f} mean|L| {L.abs().mean():.2f} acc {((m>0).float()==b[0]).float().mean():.2f}")
            print(f.split('/')[-1][:12], x.shape[-1], grid_for(*x.shape[-2:],64), name, " | ".join(row))
