import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        attn = model.transformer.h[1].attn
        mlp = model.transformer.h[2].mlp
        qkv = attn.c_attn.output
        q = qkv[0, -1, :64].save()
        proj_in = attn.c_proj.input[0, -1, :4].save()
        fc_out = mlp.c_fc.output
        fc = fc_out[0, -1, :4].save()
        print(step, qkv.shape, fc_out.shape)
        act_out = mlp.act.output
        if step == 1:
            act_out[:, -1, :] = 0
        act = act_out[0, -1, :4].save()
        down_in = mlp.c_proj.input
        print(round(down_in[0, -1].norm().item(), 2), act_out.shape)
        down = mlp.c_proj.output[0, -1, :4].save()
    out = model.generator.output.save()
print(out[0, -3:].tolist())
